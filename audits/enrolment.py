"""/audits/second-factor/: a staff person enrols, confirms and removes their own authenticators.

The secret leaves the server once: in the response to "Add an authenticator", as a QR code and
as base32 for typing in. No URL renders it again, for a pending device or a confirmed one, for
its owner or anyone else; a person who lost it removes the pending device and adds another.
Every action works on the signed-in person's own devices only: another person's device id is a
404, as if it did not exist. Each add, confirm and remove is on the security trail through the
TOTPDevice receivers in audits/security.py (its id and name, never its key).

With STAFF_REQUIRE_OTP the page is behind the second factor like every staff screen: a person's
first device comes from `manage.py enroll_totp` (a password alone must not be enough to attach
an authenticator to an account that has none).
"""

from __future__ import annotations

from base64 import b32encode
from typing import Any

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from .devices import user_subject
from .models import KnownDevice


class SecondFactorError(Exception):
    """A refused enrolment step; the message is shown to the person."""


class DeviceAddForm(forms.Form):
    name = forms.CharField(
        max_length=64,
        label="Name",
        help_text="Which app or phone, so you can tell your authenticators apart.",
    )


class DeviceConfirmForm(forms.Form):
    token = forms.CharField(
        max_length=8,
        label="Code from the app",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


# --- services ---------------------------------------------------------------------------------


def _own_device(*, user: Any, device_id: int) -> TOTPDevice:
    """The person's device, locked; anyone else's is not found (the same answer as none)."""
    device = TOTPDevice.objects.select_for_update().filter(user=user, pk=device_id).first()
    if device is None:
        raise Http404("No such authenticator.")
    return device


@transaction.atomic
def totp_device_add(*, user: Any, name: str) -> TOTPDevice:
    """A new unconfirmed device for `user`, with a fresh random key. It signs nobody in until
    its owner confirms it with a code from the app."""
    return TOTPDevice.objects.create(user=user, name=name, confirmed=False)


@transaction.atomic
def totp_device_confirm(*, user: Any, device_id: int, token: str) -> TOTPDevice:
    """Confirm the person's pending device with a current code from their app."""
    device = _own_device(user=user, device_id=device_id)
    if device.confirmed:
        raise SecondFactorError("This authenticator is already confirmed.")
    allowed, _reason = device.verify_is_allowed()
    if not allowed:
        raise SecondFactorError("Too many wrong codes. Wait a minute and try again.")
    if not device.verify_token(token.strip()):
        raise SecondFactorError("That code is not right. Enter the current code from the app.")
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return device


@transaction.atomic
def totp_device_remove(*, user: Any, device_id: int) -> None:
    """Remove one of the person's devices. With STAFF_REQUIRE_OTP their last confirmed one stays:
    without it they could not sign in again."""
    device = _own_device(user=user, device_id=device_id)
    if settings.STAFF_REQUIRE_OTP and device.confirmed:
        others = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=True)
            .exclude(pk=device.pk)
        )
        if not others.exists():
            raise SecondFactorError(
                "This is your only confirmed authenticator and sign-in needs one: "
                "add and confirm another before removing it."
            )
    device.delete()


# --- views --------------------------------------------------------------------------------------


def _staff_only(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("The second factor is for staff.")


def _own_device_exists_or_404(request: HttpRequest, pk: int) -> None:
    if not TOTPDevice.objects.filter(user=request.user, pk=pk).exists():
        raise Http404("No such authenticator.")


def _qr_svg(device: TOTPDevice) -> str:
    # segno draws the otpauth:// address as path data; nothing in it comes from the request
    # except the username, which the QR encoding carries as bits, not as markup.
    svg = segno.make(device.config_url, error="m").svg_inline(
        scale=5, border=4, dark="#000", light="#fff", title="QR code for your authenticator app"
    )
    return mark_safe(svg)  # noqa: S308  # nosec B308 B703


def _page(
    request: HttpRequest,
    *,
    add_form: DeviceAddForm | None = None,
    confirm_errors: dict[int, str] | None = None,
    enrolled: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    devices = TOTPDevice.objects.filter(user=request.user).order_by("created_at", "pk")
    return render(
        request,
        "audits/second_factor.html",
        {
            "devices": devices,
            "add_form": add_form or DeviceAddForm(),
            "confirm_form": DeviceConfirmForm(),
            "confirm_errors": confirm_errors or {},
            "enrolled": enrolled,
            "otp_required": settings.STAFF_REQUIRE_OTP,
            "known_devices": KnownDevice.objects.filter(
                subject=user_subject(request.user)
            ).order_by("-last_seen")[:20],
        },
        status=status,
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def second_factor(request: HttpRequest) -> HttpResponse:
    """GET: the person's devices, never a key. POST: add one and show its secret, this once."""
    _staff_only(request)
    if request.method != "POST":
        return _page(request)
    form = DeviceAddForm(request.POST)
    if not form.is_valid():
        return _page(request, add_form=form, status=400)
    device = totp_device_add(user=request.user, name=form.cleaned_data["name"])
    enrolled = {
        "device": device,
        "qr_svg": _qr_svg(device),
        "secret": b32encode(device.bin_key).decode(),
    }
    return _page(request, enrolled=enrolled)


@never_cache
@login_required
@require_POST
def second_factor_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    _staff_only(request)
    form = DeviceConfirmForm(request.POST)
    if not form.is_valid():
        _own_device_exists_or_404(request, pk)  # another person's device is a 404 here too
        return _page(request, confirm_errors={pk: "Enter the code from the app."}, status=400)
    try:
        device = totp_device_confirm(
            user=request.user, device_id=pk, token=form.cleaned_data["token"]
        )
    except SecondFactorError as error:
        return _page(request, confirm_errors={pk: str(error)}, status=400)
    messages.success(request, f"Authenticator '{device.name}' is confirmed.")
    return redirect("audits:second-factor")


@never_cache
@login_required
@require_POST
def second_factor_remove(request: HttpRequest, pk: int) -> HttpResponse:
    _staff_only(request)
    try:
        totp_device_remove(user=request.user, device_id=pk)
    except SecondFactorError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Authenticator removed.")
    return redirect("audits:second-factor")
