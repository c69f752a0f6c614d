"""Staff sign in with a password and a TOTP code when STAFF_REQUIRE_OTP is on."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _otp_on(settings) -> None:
    settings.STAFF_REQUIRE_OTP = True


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def _sign_in(client, username: str, **extra):
    return client.post(
        "/admin/login/?next=/kyc/",
        {"username": username, "password": "a-long-test-passw0rd", **extra},
    )


def test_a_password_alone_is_not_enough(client, analyst) -> None:
    TOTPDevice.objects.create(user=analyst, name="phone", confirmed=True)
    response = _sign_in(client, "analyst")
    assert response.status_code == 200  # the form again, with an error
    assert client.get("/kyc/").status_code == 302


def test_password_and_code_sign_in(client, analyst) -> None:
    device = TOTPDevice.objects.create(user=analyst, name="phone", confirmed=True)
    response = _sign_in(client, "analyst", otp_device=device.persistent_id, otp_token=_code(device))
    assert response.status_code == 302 and response["Location"] == "/kyc/"
    assert client.get("/kyc/").status_code == 200


def test_a_wrong_code_is_refused(client, analyst) -> None:
    device = TOTPDevice.objects.create(user=analyst, name="phone", confirmed=True)
    wrong = f"{(int(_code(device)) + 1) % 1_000_000:06d}"
    _sign_in(client, "analyst", otp_device=device.persistent_id, otp_token=wrong)
    assert client.get("/kyc/").status_code == 302


def test_a_session_without_the_second_factor_is_sent_back_to_sign_in(client, analyst) -> None:
    client.force_login(analyst)  # password only
    response = client.get("/kyc/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/kyc/")
    assert client.get("/admin/").status_code == 302
    assert client.get("/healthz").status_code == 200


def test_enrolling_prints_the_authenticator_address_once(analyst) -> None:
    out = io.StringIO()
    call_command("enroll_totp", "analyst", "--name", "phone", stdout=out)
    assert "otpauth://totp/" in out.getvalue()
    assert TOTPDevice.objects.get(user=analyst).name == "phone"
    with pytest.raises(CommandError, match="No active user"):
        call_command("enroll_totp", "nobody")
