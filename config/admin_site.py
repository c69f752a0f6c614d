"""The staff console's admin site: a second factor (TOTP, django-otp) when STAFF_REQUIRE_OTP."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite


class BackofficeAdminSite(OTPAdminSite):
    site_header = "Back-office console"
    site_title = "Back-office"
    index_title = "Staff console"
    site_url = "/"  # "View site": the screens of the person's role

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    @property  # type: ignore[override]
    def login_form(self) -> Any:
        return OTPAdminAuthenticationForm if settings.STAFF_REQUIRE_OTP else AdminAuthenticationForm

    @property  # type: ignore[override]
    def login_template(self) -> Any:
        return OTPAdminSite.login_template if settings.STAFF_REQUIRE_OTP else None

    def has_permission(self, request: HttpRequest) -> bool:
        if settings.STAFF_REQUIRE_OTP:
            return super().has_permission(request)  # active staff, verified by a device
        return AdminSite.has_permission(self, request)
