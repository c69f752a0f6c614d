"""The paths of the integration API, each named after its view: `PaymentRefundApi` serves
`api-payment-refund`, the name tests and clients reverse."""

from __future__ import annotations

import re

from django.urls import URLPattern, path
from rest_framework.views import APIView

_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


def api_path(route: str, view: type[APIView]) -> URLPattern:
    """`route` served by `view`, named after it."""
    words = _WORD_START.sub("-", view.__name__.removesuffix("Api")).lower()
    return path(route, view.as_view(), name=f"api-{words}")


def resource_paths(
    collection: str,
    list_view: type[APIView],
    detail_view: type[APIView],
    **actions: type[APIView],
) -> list[URLPattern]:
    """A collection's paths: `<collection>/` for `list_view`, `<collection>/<int:pk>/` for
    `detail_view`, and below it `<action>/` for the view each of `actions` names."""
    detail = f"{collection}/<int:pk>/"
    return [
        api_path(f"{collection}/", list_view),
        api_path(detail, detail_view),
        *(api_path(f"{detail}{action}/", view) for action, view in actions.items()),
    ]
