"""One error shape for the whole API: {"type", "message", "errors": {field: [...]}}.

Domain exceptions from the services are mapped to HTTP here, once. Anything unexpected is a
500 in the same shape, logged with its traceback, never shown to the client.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from kyc.exceptions import NotAllowed

from ..approvals import ApprovalAlreadyPending, ApprovalError
from ..exceptions import (
    DomainError,
    InvalidTransition,
    MerchantCannotTakePayments,
    RefundExceedsCaptured,
    RefundNotAllowed,
)
from ..gateways import GatewayDeclined, GatewayError, GatewayNotConfigured, GatewayUnavailable
from ..services import EvidenceAlreadySubmitted
from ..uploads import UploadRejected

logger = logging.getLogger("payments.api")

# Most specific first: the first class the exception is an instance of decides.
DOMAIN_STATUS: list[tuple[type[Exception], int]] = [
    (GatewayDeclined, status.HTTP_402_PAYMENT_REQUIRED),
    (GatewayNotConfigured, status.HTTP_503_SERVICE_UNAVAILABLE),
    (GatewayUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),  # outcome unknown: retry
    # The gateway refused this request (its message says why): the client's to fix, not ours.
    (GatewayError, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (NotAllowed, status.HTTP_403_FORBIDDEN),
    (InvalidTransition, status.HTTP_409_CONFLICT),
    (RefundNotAllowed, status.HTTP_409_CONFLICT),
    (EvidenceAlreadySubmitted, status.HTTP_409_CONFLICT),
    (ApprovalAlreadyPending, status.HTTP_409_CONFLICT),
    (ApprovalError, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (MerchantCannotTakePayments, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (RefundExceedsCaptured, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (UploadRejected, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (DomainError, status.HTTP_422_UNPROCESSABLE_ENTITY),
]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


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
        code = next(code for cls, code in DOMAIN_STATUS if isinstance(exc, cls))
        return Response(error_body(_snake(type(exc).__name__), str(exc)), status=code)
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
