"""Staff sign-in: one answer for every refusal, a lockout by django-axes, and its audited lift.

A wrong password, a wrong or missing one-time code and a locked account all get the same
message, so the page never tells an attacker which factor was right. A wrong code counts as a
failed sign-in for the lockout, exactly like a wrong password.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.models import AccessAttempt
from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django_otp import devices_for_user

from audits import context

REFUSED = (
    "Sign-in failed. Check your username, password and one-time code and try again. "
    "After repeated failures sign-in is blocked for a while; an administrator can lift it."
)


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check, for sign-ins that come with a request.

    Without a request (the test client's login(), a shell) there is no client to lock out, and
    axes would raise instead of answering; Django's own backend still checks the password.
    """

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)


class SignInForm(AdminAuthenticationForm):
    """Username, password and, when STAFF_REQUIRE_OTP, a TOTP code, checked together."""

    error_messages = {"invalid_login": REFUSED, "inactive": REFUSED}

    otp_token = forms.CharField(
        label="One-time code",
        required=False,
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    # Older clients (and django-otp's own form) name the device; with one device it may be left
    # out, and any of the person's confirmed devices is tried.
    otp_device = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        user = self.get_user()
        if user is not None and self._needs_second_factor(user) and not self._second_factor(user):
            # Counted by django-axes (and any other listener) like a wrong password.
            user_login_failed.send(
                sender=__name__,
                # The person is told nothing about which factor failed; the trail is.
                credentials={"username": cleaned.get("username"), "factor": "second factor"},
                request=self.request,
            )
            self.user_cache = None
            raise forms.ValidationError(REFUSED, code="invalid_login")
        return cleaned

    def _needs_second_factor(self, user: Any) -> bool:
        """Always with STAFF_REQUIRE_OTP; without it, still from a device the person has never
        signed in from, when they have an authenticator (audits/devices.py)."""
        if settings.STAFF_REQUIRE_OTP:
            return True
        from audits import devices

        if self.request is None or not any(devices_for_user(user, confirmed=True)):
            return False
        fp = devices.fingerprint(self.request)
        return not devices.is_known(subject=devices.user_subject(user), fp=fp)

    def _second_factor(self, user: Any) -> bool:
        token = (self.cleaned_data.get("otp_token") or "").strip()
        if not token:
            return False
        wanted = self.cleaned_data.get("otp_device") or ""
        with transaction.atomic():
            for device in devices_for_user(user, confirmed=True, for_verify=True):
                if wanted and device.persistent_id != wanted:
                    continue
                allowed, _reason = device.verify_is_allowed()
                if allowed and device.verify_token(token):
                    user.otp_device = device  # django-otp marks the session verified at login
                    return True
        return False


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """A locked-out attempt gets the sign-in page with the same refusal as any other failure."""
    if original_response is not None:
        return original_response
    form = SignInForm(request)
    form.add_error(None, REFUSED)
    return TemplateResponse(request, "registration/login.html", {"form": form}).render()


def lift_lockout(*, attempt_ids: list[int], actor: Any) -> int:
    """Clear the failures behind the chosen lockouts: each one's account and its address.

    Returns how many attempt records were removed. The lift is written to the hash-chained audit
    trail with who did it, from where.
    """
    with transaction.atomic():
        chosen = list(AccessAttempt.objects.select_for_update().filter(pk__in=attempt_ids))
        if not chosen:
            return 0
        match = Q()
        for attempt in chosen:
            match |= Q(username=attempt.username) | Q(ip_address=attempt.ip_address)
        cleared = list(
            AccessAttempt.objects.select_for_update()
            .filter(match)
            .values("username", "ip_address", "failures_since_start")
        )
        AccessAttempt.objects.filter(match).delete()
        _audit_lift(cleared, actor=actor)
    return len(cleared)


def _audit_lift(cleared: list[dict[str, Any]], *, actor: Any) -> None:
    """An unlock is a privilege change: it goes to the security trail, with who lifted it."""
    from audits import security

    with context.acting(actor):
        names = sorted({row["username"] or "" for row in cleared})
        security.record(
            action="signin_unlock",
            object_type="axes.accessattempt",
            object_id=",".join(names)[:64] or "-",
            before={"attempts": cleared},
            after={"attempts": []},
        )
