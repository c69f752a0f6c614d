"""permission_required that says which permission is missing, for the 403 page."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase


def describe(perm: str) -> str:
    """ "Can view payment" (payments.view_payment), or the code name alone if unknown."""
    app_label, _, codename = perm.partition(".")
    name = (
        Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        .values_list("name", flat=True)
        .first()
    )
    return f"“{name}” ({perm})" if name else perm


def permission_required(
    perm: str, *, raise_exception: bool = True
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Django's permission_required(raise_exception=True), with a 403 whose message names the
    missing permission. Views put login_required outside it, so anonymous visitors still go to
    the sign-in page; `raise_exception` is accepted so call sites read like Django's."""

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.has_perm(perm):
                raise PermissionDenied(f"This needs the permission {describe(perm)}.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
