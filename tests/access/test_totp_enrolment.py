"""A staff person enrols their own authenticator (issue #10, point 2): the QR code and the secret
are shown once, in the response that creates the device, to its owner; confirming needs a real
current code; another person's device is a 404; every step is on the security trail."""

from __future__ import annotations

import json
from base64 import b32encode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits.models import PaymentAudit
from tests.access.test_role_url_matrix import row_counts
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db

PAGE = "/audits/second-factor/"
ADDR = "192.0.2.44"


@pytest.fixture(autouse=True)
def _otp_off(settings) -> None:
    # The page itself; the sign-in gate in front of it is tested below with the factor on.
    settings.STAFF_REQUIRE_OTP = False


def _client(user: User) -> Client:
    client = Client(REMOTE_ADDR=ADDR)
    client.force_login(user)
    return client


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def _wrong(device: TOTPDevice) -> str:
    return f"{(int(_code(device)) + 1) % 1_000_000:06d}"


def _secret(device: TOTPDevice) -> str:
    return b32encode(device.bin_key).decode()


def _trail(action: str, user: User) -> list[PaymentAudit]:
    return list(
        PaymentAudit.objects.filter(
            action_type=f"security.device.{action}", object_type="auth.user", object_id=str(user.pk)
        ).order_by("created_at", "seq")
    )


def _shows_no_secret(html: str, device: TOTPDevice) -> None:
    for secret in (_secret(device), device.key, device.key.upper(), device.config_url):
        assert secret not in html
    assert "otpauth://" not in html and "<svg" not in html


def _enrol(client: Client, name: str = "work phone") -> tuple[TOTPDevice, str]:
    response = client.post(PAGE, {"name": name})
    assert response.status_code == 200
    return TOTPDevice.objects.get(name=name), response.content.decode()


def test_adding_shows_the_qr_code_and_secret_in_that_response_only(analyst: User) -> None:
    client = _client(analyst)
    response = client.post(PAGE, {"name": "work phone"})
    device = TOTPDevice.objects.get()
    html = response.content.decode()
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert (device.user, device.name, device.confirmed) == (analyst, "work phone", False)
    assert '<svg width="' in html and 'class="segno"' in html  # inline, drawn on the server
    assert _secret(device) in html
    assert "<script" not in html  # the Content-Security-Policy forbids inline scripts anyway
    assert f"/audits/second-factor/{device.pk}/confirm/" in html

    # Any later page, the owner's included, shows the device without the secret or the QR code.
    later = client.get(PAGE)
    assert later.status_code == 200 and "no-store" in later["Cache-Control"]
    assert "work phone" in later.content.decode()
    _shows_no_secret(later.content.decode(), device)


def test_the_page_lists_own_devices_with_state_never_the_key(analyst: User, officer: User) -> None:
    mine = TOTPDevice.objects.create(user=analyst, name="my phone", confirmed=True)
    theirs = TOTPDevice.objects.create(user=officer, name="officer's tablet", confirmed=True)
    html = _client(analyst).get(PAGE).content.decode()
    assert "my phone" in html and "confirmed" in html and "never" in html  # last used
    assert "tablet" not in html
    _shows_no_secret(html, mine)
    _shows_no_secret(html, theirs)


def test_confirming_with_the_current_code_confirms_it(analyst: User) -> None:
    client = _client(analyst)
    device, _ = _enrol(client)
    response = client.post(f"{PAGE}{device.pk}/confirm/", {"token": _code(device)})
    assert response.status_code == 302 and response["Location"] == PAGE
    device.refresh_from_db()
    assert device.confirmed
    page = client.get(PAGE).content.decode()
    assert "is confirmed" in page
    _shows_no_secret(page, device)


def test_a_wrong_code_is_an_error_at_the_field_and_changes_nothing(analyst: User) -> None:
    client = _client(analyst)
    device, _ = _enrol(client)
    before = row_counts()
    response = client.post(f"{PAGE}{device.pk}/confirm/", {"token": _wrong(device)})
    html = response.content.decode()
    assert response.status_code == 400
    assert f'id="token-{device.pk}-error"' in html and "That code is not right" in html
    assert f'aria-describedby="token-{device.pk}-error"' in html
    _shows_no_secret(html, device)  # the error page does not bring the secret back
    device.refresh_from_db()
    assert device.confirmed is False
    assert row_counts() == before  # no row anywhere, the security trail included
    # An empty code is refused the same way.
    assert client.post(f"{PAGE}{device.pk}/confirm/", {"token": ""}).status_code == 400
    assert row_counts() == before


def test_another_persons_device_is_a_404_and_nothing_is_written(
    analyst: User, officer: User
) -> None:
    theirs = TOTPDevice.objects.create(user=officer, name="officer's phone", confirmed=False)
    client = _client(analyst)
    before = row_counts()
    for url, data in (
        (f"{PAGE}{theirs.pk}/confirm/", {"token": _code(theirs)}),
        (f"{PAGE}{theirs.pk}/confirm/", {"token": ""}),
        (f"{PAGE}{theirs.pk}/remove/", {}),
        (f"{PAGE}{theirs.pk + 1000}/remove/", {}),
    ):
        response = client.post(url, data)
        assert response.status_code == 404, url
        _shows_no_secret(response.content.decode(), theirs)
    assert row_counts() == before
    theirs.refresh_from_db()
    assert theirs.confirmed is False


def test_removing_ones_own_device(analyst: User) -> None:
    client = _client(analyst)
    device, _ = _enrol(client)
    response = client.post(f"{PAGE}{device.pk}/remove/")
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert client.get(f"{PAGE}{device.pk}/remove/").status_code == 405  # a POST only


def test_add_confirm_and_remove_are_on_the_security_trail(analyst: User) -> None:
    client = _client(analyst)
    device, _ = _enrol(client)
    client.post(f"{PAGE}{device.pk}/confirm/", {"token": _code(device)})
    client.post(f"{PAGE}{device.pk}/remove/")
    (added,) = _trail("add", analyst)
    (confirmed,) = _trail("update", analyst)
    (removed,) = _trail("remove", analyst)
    assert added.after_state["confirmed"] is False
    assert (confirmed.before_state["confirmed"], confirmed.after_state["confirmed"]) == (
        False,
        True,
    )
    assert removed.before_state["device_pk"] == device.pk
    for row in (added, confirmed, removed):
        assert (row.user_id, row.ip_address) == (analyst.pk, ADDR)  # the person, from where
        written = json.dumps([row.before_state, row.after_state])
        assert device.key not in written and _secret(device) not in written


@pytest.mark.parametrize(
    "role_fixture", ["analyst", "officer", "ops", "auditor", "administrator", "no_role"]
)
def test_every_role_enrols_its_own_device(
    role_fixture: str, request: pytest.FixtureRequest
) -> None:
    user = (
        make_staff("no-role")
        if role_fixture == "no_role"
        else request.getfixturevalue(role_fixture)
    )
    client = _client(user)
    page = client.get(PAGE).content.decode()
    assert 'href="/audits/second-factor/"' in page  # the user menu links it
    device, html = _enrol(client, name=f"{role_fixture} phone")
    assert device.user == user and _secret(device) in html
    client.post(f"{PAGE}{device.pk}/confirm/", {"token": _code(device)})
    device.refresh_from_db()
    assert device.confirmed


def test_anonymous_visitors_are_sent_to_sign_in(analyst: User) -> None:
    device = TOTPDevice.objects.create(user=analyst, name="phone", confirmed=False)
    before = row_counts()
    for method, url in (
        ("get", PAGE),
        ("post", PAGE),
        ("post", f"{PAGE}{device.pk}/confirm/"),
        ("post", f"{PAGE}{device.pk}/remove/"),
    ):
        response = getattr(Client(), method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert row_counts() == before


def test_a_signed_in_person_who_is_not_staff_is_refused(db: None) -> None:
    person = User.objects.create_user(username="customer", password="a-long-test-passw0rd")
    client = _client(person)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {"name": "x"}).status_code == 403
    assert not TOTPDevice.objects.exists()


def test_a_name_is_required(analyst: User) -> None:
    response = _client(analyst).post(PAGE, {"name": ""})
    assert response.status_code == 400
    assert not TOTPDevice.objects.exists()


# --- with the second factor required ----------------------------------------------------------


def _sign_in(client: Client, user: User, device: TOTPDevice) -> None:
    response = client.post(
        "/admin/login/?next=/audits/second-factor/",
        {
            "username": user.username,
            "password": "a-long-test-passw0rd",
            "otp_device": device.persistent_id,
            "otp_token": _code(device),
        },
    )
    assert response.status_code == 302, response.content.decode()[:500]


def test_with_the_factor_required_a_password_only_session_cannot_enrol(
    settings, analyst: User
) -> None:
    settings.STAFF_REQUIRE_OTP = True
    client = _client(analyst)  # password only, no device yet
    response = client.post(PAGE, {"name": "attacker's phone"})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not TOTPDevice.objects.exists()


def test_with_the_factor_required_a_verified_person_adds_another_device(
    settings, analyst: User
) -> None:
    settings.STAFF_REQUIRE_OTP = True
    first = TOTPDevice.objects.create(user=analyst, name="first", confirmed=True)
    client = Client(REMOTE_ADDR=ADDR)
    _sign_in(client, analyst, first)
    second, html = _enrol(client, name="second")
    assert _secret(second) in html
    client.post(f"{PAGE}{second.pk}/confirm/", {"token": _code(second)})
    second.refresh_from_db()
    assert second.confirmed


def test_with_the_factor_required_the_last_confirmed_device_stays(settings, analyst: User) -> None:
    settings.STAFF_REQUIRE_OTP = True
    only = TOTPDevice.objects.create(user=analyst, name="only", confirmed=True)
    pending = TOTPDevice.objects.create(user=analyst, name="pending", confirmed=False)
    client = Client(REMOTE_ADDR=ADDR)
    _sign_in(client, analyst, only)
    response = client.post(f"{PAGE}{only.pk}/remove/", follow=True)
    assert "only confirmed authenticator" in response.content.decode()
    assert TOTPDevice.objects.filter(pk=only.pk).exists()
    client.post(f"{PAGE}{pending.pk}/remove/")  # a pending one goes
    assert not TOTPDevice.objects.filter(pk=pending.pk).exists()
