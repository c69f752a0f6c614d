"""The console for credential stores: people, roles and second-factor devices, without secrets.

No page shows a TOTP key, a QR code, a password hash (not even Django's masked summary of
one), a session key or a token hash, to any role, superusers included. Devices are enrolled by
their owner (/audits/second-factor/, audits/enrolment.py, which shows the QR code once; or, for
a first device, `manage.py enroll_totp`, which prints the authenticator address once); the
console lists, renames, unconfirms and removes them, and every such change is on the security
trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.forms import (
    ReadOnlyPasswordHashField,
    ReadOnlyPasswordHashWidget,
    UserChangeForm,
)
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.http import HttpRequest

# Import django-otp's admin first so that its TOTPDevice registration (which shows the key and
# a QR code) has happened and can be replaced: autodiscover would import it after ours.
from django_otp.plugins.otp_totp import admin as _otp_totp_admin  # noqa: F401
from django_otp.plugins.otp_totp.models import TOTPDevice


class PasswordStateWidget(ReadOnlyPasswordHashWidget):
    """Whether a password is set, never the algorithm, salt or (masked) hash."""

    def get_context(self, name: str, value: Any, attrs: Any) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        usable = bool(value) and not value.startswith(UNUSABLE_PASSWORD_PREFIX)
        context["summary"] = [{"label": "A password is set." if usable else "No password set."}]
        return context


class SafeUserChangeForm(UserChangeForm):
    password = ReadOnlyPasswordHashField(
        label="Password",
        widget=PasswordStateWidget,
        help_text="Passwords are never shown. Use the button to set a new one.",
    )


admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class SafeTOTPDeviceAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    list_select_related = ["user"]
    search_fields = ["=user__username", "name"]
    fields = ["user", "name", "confirmed", "created_at", "last_used_at"]
    readonly_fields = ["user", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A key made here would be seen by whoever made it: the owner enrols (audits/enrolment.py).
        return False
