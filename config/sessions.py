"""Session limits (PCI DSS 8.2.8): a session ends after SESSION_IDLE_SECONDS without a request
and SESSION_ABSOLUTE_SECONDS after sign-in, whatever the cookie says.

The sign-in time is stamped into the session when someone signs in (Django has just given the
session a new key); a signed-in session without the stamp is treated as expired, so a session
made some other way cannot live for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

SIGNED_IN_AT = "signed_in_at"
LAST_SEEN_AT = "last_seen_at"
RENEW_EVERY_SECONDS = 60


def _now() -> float:
    return timezone.now().timestamp()


def stamp_sign_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """user_logged_in receiver: the session's clocks start now."""
    if request is None or not hasattr(request, "session"):
        return
    now = _now()
    request.session[SIGNED_IN_AT] = now
    request.session[LAST_SEEN_AT] = now


def expired(session: Any, now: float) -> str | None:
    """Why this signed-in session is over, or None while it may go on."""
    signed_in_at = session.get(SIGNED_IN_AT)
    last_seen_at = session.get(LAST_SEEN_AT)
    if not isinstance(signed_in_at, int | float) or not isinstance(last_seen_at, int | float):
        return "Your session has ended. Please sign in again."
    if now - signed_in_at >= settings.SESSION_ABSOLUTE_SECONDS:
        return "Your session reached its time limit. Please sign in again."
    if now - last_seen_at >= settings.SESSION_IDLE_SECONDS:
        return "Your session ended after a period without activity. Please sign in again."
    return None


class SessionLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        # A token-authenticated API call has no session user here: DRF authenticates it later.
        if user is not None and user.is_authenticated:
            now = _now()
            reason = expired(request.session, now)
            if reason is not None:
                logout(request)  # deletes the session server-side
                if request.path.startswith("/api/"):
                    return JsonResponse({"type": "session_expired", "message": reason}, status=401)
                messages.info(request, reason)
                return redirect(f"{reverse('admin:login')}?next={quote(request.get_full_path())}")
            # Renewed at most once a minute, so most requests write nothing: the session row
            # (and its database expiry) is saved only when the session changed.
            if now - request.session[LAST_SEEN_AT] >= RENEW_EVERY_SECONDS:
                request.session[LAST_SEEN_AT] = now
        return self.get_response(request)
