from __future__ import annotations

import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from . import context
from .client import (
    DEVICE_COOKIE_SALT,
    client_ip,
    device_id_from_cookie,
    device_id_from_header,
    new_device_id,
)

DEVICE_COOKIE_MAX_AGE = 365 * 24 * 3600


def _source_for(path: str) -> str:
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/webhooks/"):
        return "webhook"
    return "web"


def request_context_for(request: HttpRequest, *, device_id: str | None) -> context.AuditContext:
    """The audit context of a request: where it came from (its source by path, the client's
    address), on which device, and the request id config.request_id gave it (when it ran
    first). The user is read from the request only when a row is written (context.py)."""
    return context.AuditContext(
        source=_source_for(request.path),
        ip_address=client_ip(request),
        device_id=device_id,
        request_id=getattr(request, "request_id", None) or uuid.uuid4().hex,
        request=request,
    )


class RequestContextMiddleware:
    """Binds the audit context (user, client IP, device id) for the length of the request.

    It replaces django-auditlog's middleware, which believes the first X-Forwarded-For of any
    client and reads the user before DRF has authenticated it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header_device = device_id_from_header(request)
        cookie_device = device_id_from_cookie(request)
        device_id = header_device or cookie_device or new_device_id()
        request_context = request_context_for(request, device_id=device_id)
        request.audit_context = request_context  # type: ignore[attr-defined]
        token = context.push(request_context)
        try:
            response = self.get_response(request)
        finally:
            context.pop(token)
        if header_device is None and cookie_device is None:
            response.set_signed_cookie(
                settings.DEVICE_ID_COOKIE,
                device_id,
                salt=DEVICE_COOKIE_SALT,
                max_age=DEVICE_COOKIE_MAX_AGE,
                httponly=True,
                secure=not settings.DEBUG,
                samesite="Lax",
            )
        return response
