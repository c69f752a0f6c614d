"""Refuses malformed requests before any view, parser or form sees them.

A body over the limit is answered 413 from its declared length, before a byte of it is read;
a NUL byte in the path, the query or a urlencoded form, a query or form that is not UTF-8,
and a JSON body escaping a NUL or an unpaired surrogate (webhooks aside: they store such an
event escaped) are answered 400. PostgreSQL cannot store NUL in text and psycopg cannot encode
a lone surrogate, so without this each was a 500 once it reached a query or a save.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

# Multipart posts to these views carry a document (up to KYC_DOCUMENT_MAX_BYTES); every other
# request keeps to REQUEST_BODY_MAX_BYTES.
UPLOAD_URL_NAMES = {"api-kyc-document-upload", "payments:dispute-action"}


def _declared_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        # Django reads such a body as empty; nothing to measure.
        return 0


def _body_limit(request: HttpRequest) -> int:
    if request.content_type == "multipart/form-data":
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return settings.REQUEST_BODY_MAX_BYTES
        if match.view_name in UPLOAD_URL_NAMES:
            return settings.UPLOAD_BODY_MAX_BYTES
    return settings.REQUEST_BODY_MAX_BYTES


# A JSON \\uXXXX escape: an odd run of backslashes before the u (an even run is escaped text).
_JSON_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u([0-9a-fA-F]{4})")


def _json_text_problem(body: bytes) -> str | None:
    """NUL or an unpaired surrogate written as a JSON escape: valid JSON that no column can
    hold. Found on the raw bytes, so webhooks (which verify a signature over them) and the API
    refuse it alike, before anything is stored."""
    pending_high_end = -1
    for match in _JSON_ESCAPE.finditer(body):
        code = int(match.group(2), 16)
        escape_start = match.start(2) - 2
        if pending_high_end >= 0:
            if not (0xDC00 <= code <= 0xDFFF and escape_start == pending_high_end):
                return "an unpaired surrogate"
            pending_high_end = -1
            continue
        if code == 0:
            return "a NUL character"
        if 0xD800 <= code <= 0xDBFF:
            pending_high_end = match.end()
        elif 0xDC00 <= code <= 0xDFFF:
            return "an unpaired surrogate"
    return "an unpaired surrogate" if pending_high_end >= 0 else None


def _is_utf8(raw: bytes) -> bool:
    try:
        urllib.parse.unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _refuse(request: HttpRequest, status: int, type_: str, message: str) -> HttpResponse:
    if request.path.startswith(("/api/", "/webhooks/")):
        return JsonResponse({"type": type_, "message": message, "errors": {}}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RequestGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = _body_limit(request)
        if _declared_length(request) > limit:
            return _refuse(
                request, 413, "request_too_large", f"The request body is over {limit} bytes."
            )
        query = request.META.get("QUERY_STRING", "").encode("latin-1", "replace")
        if "\x00" in request.path or b"%00" in query or not _is_utf8(query):
            return _refuse(
                request, 400, "bad_request", "The URL contains a NUL or is not valid UTF-8."
            )
        if request.content_type == "application/x-www-form-urlencoded":
            body = request.body
            if b"\x00" in body or b"%00" in body or not _is_utf8(body):
                return _refuse(
                    request, 400, "bad_request", "The form contains a NUL or is not valid UTF-8."
                )
        elif request.content_type == "application/json" and not request.path.startswith(
            "/webhooks/"
        ):
            # Webhooks keep their own rule (payments/inbox/verify.py): a signed event is stored with
            # the NUL escaped and acknowledged, or the gateway would resend it for days.
            problem = _json_text_problem(request.body)
            if problem:
                return _refuse(request, 400, "parse_error", f"The JSON contains {problem}.")
        return self.get_response(request)
