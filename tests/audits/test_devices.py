"""Device fingerprints (issue 15, point 1): computed on the server and combined with the
client's device id, kept per staff person, API token and merchant; a staff sign-in from a new
device goes to the security trail, is shown to the person, and asks for the second factor."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits import context
from audits.devices import fingerprint, network_of
from audits.models import KnownDevice, PaymentAudit

pytestmark = pytest.mark.django_db

CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36"
)
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


def _fp(ua: str, ip: str = "203.0.113.7", device: str = "d1", **meta: str) -> Any:
    request = RequestFactory().get("/", HTTP_USER_AGENT=ua, **meta)
    with context.bind(ip_address=ip, device_id=device, request=request):
        return fingerprint(request)


def test_a_browser_update_is_the_same_device_another_browser_or_network_is_not() -> None:
    base = _fp(CHROME_LINUX.format(v=130), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")
    updated = _fp(CHROME_LINUX.format(v=131), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.8")
    assert base.key == updated.key
    assert base.summary == {
        "browser": "Chrome", "os": "Linux", "language": "en-gb", "platform": "",
        "mobile": "", "network": "203.0.113.0/24",
    }  # fmt: skip
    assert _fp(FIREFOX_WINDOWS).key != base.key
    assert _fp(CHROME_LINUX.format(v=130), ip="198.51.100.7").key != base.key
    assert (
        _fp(CHROME_LINUX.format(v=130), ip="203.0.113.200").key
        == _fp(CHROME_LINUX.format(v=130), ip="203.0.113.7").key
    )  # same /24
    assert _fp(CHROME_LINUX.format(v=130), device="d2").key != base.key
    mobile = _fp(CHROME_LINUX.format(v=130), HTTP_SEC_CH_UA_MOBILE="?1")
    assert mobile.key != _fp(CHROME_LINUX.format(v=130), HTTP_SEC_CH_UA_MOBILE="?0").key


def test_networks_are_slash_24_and_slash_48() -> None:
    assert network_of("203.0.113.77") == "203.0.113.0/24"
    assert network_of("2001:db8:abcd:12::1") == "2001:db8:abcd::/48"
    assert network_of("not an address") == ""


def _sign_in(client: Client, ua: str, device: str = "laptop-1", **extra: str) -> Any:
    return client.post(
        "/admin/login/?next=/overview/",
        {"username": "analyst", "password": "a-long-test-passw0rd", **extra},
        HTTP_USER_AGENT=ua,
        HTTP_X_DEVICE_ID=device,
    )


def _device_rows(user: User) -> list[PaymentAudit]:
    return list(
        PaymentAudit.objects.filter(
            action_type="security.device_new", object_id=str(user.pk)
        ).order_by("created_at")
    )


def test_a_first_and_a_new_device_are_recorded_and_a_known_one_is_not(
    analyst: User, settings: Any
) -> None:
    settings.STAFF_REQUIRE_OTP = False
    assert _sign_in(Client(), CHROME_LINUX.format(v=130)).status_code == 302
    assert _sign_in(Client(), CHROME_LINUX.format(v=131)).status_code == 302  # an update
    [first] = _device_rows(analyst)
    assert first.after_state["browser"] == "Chrome" and first.after_state["first_device"]
    assert KnownDevice.objects.filter(subject=f"auth.user:{analyst.pk}").count() == 1
    client = Client()
    response = _sign_in(client, FIREFOX_WINDOWS)
    assert response.status_code == 302
    rows = _device_rows(analyst)
    assert len(rows) == 2 and rows[1].after_state["os"] == "Windows"
    assert rows[1].after_state["first_device"] is False
    # The person is told, and sees their devices on their second-factor page.
    page = client.get(
        "/audits/second-factor/", HTTP_USER_AGENT=FIREFOX_WINDOWS, HTTP_X_DEVICE_ID="laptop-1"
    )
    html = page.content.decode()
    assert "Signed in from a new device: Firefox on Windows" in html
    assert "Chrome on Linux from 127.0.0.0/24" in html


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def test_a_new_device_asks_for_the_second_factor_even_when_it_is_not_required(
    analyst: User, settings: Any
) -> None:
    settings.STAFF_REQUIRE_OTP = False
    device = TOTPDevice.objects.create(user=analyst, name="phone", confirmed=True)
    # First sign-in on this browser, with the code: the device becomes known.
    assert (
        _sign_in(Client(), CHROME_LINUX.format(v=130), otp_token=_code(device)).status_code == 302
    )
    # Known device: the password is enough (STAFF_REQUIRE_OTP is off).
    assert _sign_in(Client(), CHROME_LINUX.format(v=130)).status_code == 302
    # A new device without the code: refused, the device not recorded, the failure trailed.
    devices_before = KnownDevice.objects.count()
    refused = _sign_in(Client(), FIREFOX_WINDOWS)
    assert refused.status_code == 200 and "Sign-in failed" in refused.content.decode()
    assert KnownDevice.objects.count() == devices_before
    failure = PaymentAudit.objects.filter(action_type="security.signin_failed").get()
    assert failure.after_state["reason"] == "second factor"
    # With the code it signs in, and the new device is trailed.
    device.refresh_from_db()
    device.last_t = -1  # the test's second code within one step: let it verify again
    device.save()
    assert _sign_in(Client(), FIREFOX_WINDOWS, otp_token=_code(device)).status_code == 302
    assert [r.after_state["browser"] for r in _device_rows(analyst)] == ["Chrome", "Firefox"]
