"""The gateways' lane: a webhook skips the machinery built for people.

A gateway's notification needs its request id, its metrics, the security headers, the request
guard (which comes first) and the audit context (source "webhook", the client's address); it
signs in to nothing, has no session, no CSRF token (its views are exempt), no messages and no
second factor, and a device fingerprint of a gateway means nothing. So once the guard has let
it through, this middleware calls the webhook view itself and the staff middleware after it
never runs (measured: bench/webhook_ingest.py). What they did that a webhook's answer still
needs is done here: the Host header is checked (DisallowedHost: 400) and Content-Length is set.

A device id the caller sends (header or our signed cookie) is still recorded; none is made up
and no cookie is set. Paths under /webhooks/ that name no webhook view take the full path, so
they get the usual 404 page (and APPEND_SLASH's redirect).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from audits import context
from audits.client import device_id_from_cookie, device_id_from_header
from audits.middleware import request_context_for

PREFIX = "/webhooks/"
# Every webhook view's URL name starts so (config/urls.py); no other view takes this lane.
URL_NAME_PREFIX = "webhook-"


class WebhookLaneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(PREFIX):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        if not (match.url_name or "").startswith(URL_NAME_PREFIX):
            return self.get_response(request)
        request.get_host()  # as CommonMiddleware: a Host not in ALLOWED_HOSTS is refused
        request.resolver_match = match
        device_id = device_id_from_header(request) or device_id_from_cookie(request)
        request_context = request_context_for(request, device_id=device_id)
        request.audit_context = request_context  # type: ignore[attr-defined]
        token = context.push(request_context)
        try:
            response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        finally:
            context.pop(token)
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        return response
