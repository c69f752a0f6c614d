"""With STAFF_REQUIRE_OTP, a signed-in person who has not passed the second factor is sent back
to the sign-in page (which asks for it) before any staff screen."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect

OPEN_PREFIXES = ("/admin/login/", "/admin/logout/", "/static/", "/healthz", "/readyz", "/webhooks/")


class RequireSecondFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            settings.STAFF_REQUIRE_OTP
            and user is not None
            and user.is_authenticated
            and not user.is_verified()
            and not request.path.startswith(OPEN_PREFIXES)
        ):
            logout(request)
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {
                        "type": "second_factor_required",
                        "message": "Sign in again with your one-time code.",
                    },
                    status=403,
                )
            return redirect(f"/admin/login/?next={quote(request.get_full_path())}")
        return self.get_response(request)
