"""One error shape for the whole API: {"type", "message", "errors": {field: [...]}}.

Domain errors from the services carry their own HTTP status and type. Anything unexpected is a
500 in the same shape, logged with its traceback, never shown to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ..core.errors import DomainError

logger = logging.getLogger("payments.api")


class ErrorSerializer(serializers.Serializer):
    """Every error under /api/ has this shape."""

    type = serializers.CharField(help_text="machine-readable, e.g. validation_error, not_found")
    message = serializers.CharField(help_text="for a person")
    # A field named like Serializer.errors, for the API's error shape: DRF's metaclass takes
    # declared fields off the class, so the property stays as it was.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="field name -> messages; empty unless the request was invalid",
    )


def error_body(type_: str, message: str, errors: dict[str, list[str]] | None = None) -> dict:
    return {"type": type_, "message": message, "errors": errors or {}}


def field_error(field: str, message: str) -> Response:
    """A 400 naming one field, for checks a serializer cannot make alone (e.g. ownership)."""
    return Response(
        error_body("validation_error", "The request is not valid.", {field: [message]}),
        status=status.HTTP_400_BAD_REQUEST,
    )


def _field_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested detail flattened to {"field": [...]} ("items.0.amount" for nesting)."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in _field_errors(value, name).items():
                out.setdefault(field, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                name = f"{prefix}.{index}" if prefix else str(index)
                for field, messages in _field_errors(item, name).items():
                    out.setdefault(field, []).extend(messages)
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        # Each domain error names its own status and type (payments/core/errors.py).
        return Response(error_body(exc.error_type, str(exc)), status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        errors = (
            {k: [str(m) for m in v] for k, v in exc.message_dict.items()}
            if hasattr(exc, "error_dict")
            else {"non_field_errors": [str(m) for m in exc.messages]}
        )
        return Response(
            error_body("validation_error", "The request is not valid.", errors),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled error in the API", exc_info=exc)
        return Response(
            error_body("server_error", "Something went wrong on our side; it was logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(
            "validation_error", "The request is not valid.", _field_errors(exc.detail)
        )
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = error_body(
            code if isinstance(code, str) else "error",
            str(detail) if not isinstance(detail, dict | list) else "The request was refused.",
            _field_errors(detail) if isinstance(detail, dict | list) else {},
        )
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def handler404(request: HttpRequest, exception: Exception) -> Any:
    if _is_api(request):
        return not_found(request)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request: HttpRequest) -> Any:
    if _is_api(request):
        return JsonResponse(
            error_body("server_error", "Something went wrong on our side; it was logged."),
            status=500,
        )
    from django.views.defaults import server_error

    return server_error(request)
