"""The staff console's admin site: a second factor (TOTP, django-otp) when STAFF_REQUIRE_OTP."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django_otp.admin import OTPAdminSite

from .signin import SignInForm


class BackofficeAdminSite(OTPAdminSite):
    site_header = "Back-office console"
    site_title = "Back-office"
    index_title = "Staff console"
    site_url = "/"  # "View site": the screens of the person's role

    # One form for every setting: it asks for the one-time code when STAFF_REQUIRE_OTP.
    login_form = SignInForm
    login_template = "registration/login.html"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        # The lockout screen belongs to the console itself (django-axes' own admin is off).
        from axes.models import AccessAttempt

        from .signin_admin import AccessAttemptAdmin

        self.register(AccessAttempt, AccessAttemptAdmin)

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["otp_required"] = settings.STAFF_REQUIRE_OTP
        return context

    def has_permission(self, request: HttpRequest) -> bool:
        if settings.STAFF_REQUIRE_OTP:
            return super().has_permission(request)  # active staff, verified by a device
        return AdminSite.has_permission(self, request)
