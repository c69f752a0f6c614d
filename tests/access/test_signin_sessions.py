"""Sign-in lockout (django-axes), one refusal message, session limits on a moved clock, and
sign-out that ends the session on the server (issue #10, point 4)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits.models import PaymentAudit
from config.signin import REFUSED

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-passw0rd"


class Clock:
    """timezone.now, moved by hand: Django, our session limits and django-axes all read it."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(timezone, "now", fake)
    monkeypatch.setattr("axes.attempts.now", fake)
    monkeypatch.setattr("axes.handlers.proxy.now", fake)
    return fake


def sign_in(client: Client, username: str, password: str = PASSWORD, **extra: Any) -> Any:
    remote = extra.pop("REMOTE_ADDR", "10.0.0.1")
    return client.post(
        "/admin/login/?next=/kyc/",
        {"username": username, "password": password, **extra},
        REMOTE_ADDR=remote,
    )


def signed_in(client: Client) -> bool:
    return client.get("/kyc/").status_code == 200


def refused(response: Any) -> bool:
    return response.status_code == 200 and REFUSED in response.content.decode()


def _code(device: TOTPDevice, shift: int = 0) -> str:
    value = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{(value + shift) % 1_000_000:06d}"


# --- one message for every refusal -------------------------------------------------------------


def test_wrong_password_wrong_code_and_unknown_user_get_the_same_message(
    client: Client, analyst: User, settings: Any
) -> None:
    settings.STAFF_REQUIRE_OTP = True
    device = TOTPDevice.objects.create(user=analyst, name="phone", confirmed=True)
    answers = [
        sign_in(client, "analyst", "not-the-password", otp_token=_code(device)),
        sign_in(client, "analyst", otp_token=_code(device, shift=1)),
        sign_in(client, "analyst"),  # no code at all
        sign_in(client, "nobody", otp_token=_code(device)),
    ]
    assert all(refused(answer) for answer in answers)
    notes = set()
    for answer in answers:
        body = answer.content.decode()
        notes.add(re.search(r'<div class="errornote".*?</div>', body, re.S).group(0))
        # Nothing says which factor failed (django-otp's own form would say "Invalid token").
        assert "invalid token" not in body.lower()
        assert 'name="otp_device"' not in body  # no device list: the password was not confirmed
    assert len(notes) == 1
    assert not signed_in(client)
    assert not Session.objects.exists()
    # The right password and code still work (four failures are below the limit), once the
    # person has waited out django-otp's throttle after the wrong code (1 s, doubling): reset
    # here rather than sleep, so the test does not depend on how fast the machine is.
    device.refresh_from_db()
    device.throttle_reset()
    assert sign_in(client, "analyst", otp_token=_code(device)).status_code == 302
    assert signed_in(client)


def test_a_wrong_code_counts_towards_the_lockout(
    client: Client, analyst: User, settings: Any
) -> None:
    settings.STAFF_REQUIRE_OTP = True
    device = TOTPDevice.objects.create(user=analyst, name="phone", confirmed=True)
    for _ in range(10):
        assert refused(sign_in(client, "analyst", otp_token=_code(device, shift=1)))
    answer = sign_in(client, "analyst", otp_token=_code(device))
    assert refused(answer)  # the right code, refused: locked, and the page does not say which
    assert not signed_in(client)
    assert AccessAttempt.objects.get(username="analyst").failures_since_start >= 10


# --- lockout ------------------------------------------------------------------------------------


def test_ten_failures_lock_the_account_for_thirty_minutes(
    client: Client, analyst: User, clock: Clock
) -> None:
    for attempt in range(10):
        # From ten addresses: the account's own count locks it, not one address's.
        assert refused(sign_in(client, "analyst", "wrong", REMOTE_ADDR=f"10.0.1.{attempt}"))
    answer = sign_in(client, "analyst", REMOTE_ADDR="10.0.2.1")
    assert refused(answer)
    assert not signed_in(client)
    assert not Session.objects.exists()

    clock.move(minutes=29)
    assert refused(sign_in(client, "analyst", REMOTE_ADDR="10.0.2.1"))
    # A failure during the lockout starts its 30 minutes again.
    clock.move(minutes=31)
    assert sign_in(client, "analyst", REMOTE_ADDR="10.0.2.1").status_code == 302
    assert signed_in(client)


def test_nine_failures_do_not_lock(client: Client, analyst: User) -> None:
    for _ in range(9):
        assert refused(sign_in(client, "analyst", "wrong"))
    assert sign_in(client, "analyst").status_code == 302
    # A success clears the count: nine more failures still do not lock.
    client.logout()
    for _ in range(9):
        sign_in(client, "analyst", "wrong")
    assert sign_in(client, "analyst").status_code == 302


def test_ten_failures_from_one_address_lock_that_address_for_every_account(
    client: Client, analyst: User, officer: User
) -> None:
    for attempt in range(10):
        assert refused(sign_in(client, f"guess{attempt}", "wrong", REMOTE_ADDR="203.0.113.9"))
    assert refused(sign_in(client, "officer", REMOTE_ADDR="203.0.113.9"))
    assert not signed_in(client)
    # The same account from another address is not locked.
    assert sign_in(Client(), "officer", REMOTE_ADDR="198.51.100.7").status_code == 302


def _lock(username: str, address: str = "10.0.0.1") -> None:
    client = Client()
    for _ in range(10):
        sign_in(client, username, "wrong", REMOTE_ADDR=address)


def test_an_administrator_sees_and_lifts_a_lockout_and_it_is_audited(
    client: Client, analyst: User, administrator: User
) -> None:
    _lock("analyst")
    assert refused(sign_in(Client(), "analyst"))
    console = Client()
    console.force_login(administrator)
    listing = console.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert "analyst" in listing.content.decode()
    attempt = AccessAttempt.objects.get(username="analyst")
    before = PaymentAudit.objects.count()

    answer = console.post(
        "/admin/axes/accessattempt/",
        {"action": "lift", "_selected_action": [attempt.pk]},
        REMOTE_ADDR="192.0.2.50",
    )
    assert answer.status_code == 302
    assert not AccessAttempt.objects.exists()
    row = PaymentAudit.objects.order_by("-created_at", "-seq").first()
    assert PaymentAudit.objects.count() == before + 1
    assert row.action_type == "security.signin_unlock"
    assert row.user_id == administrator.pk and row.ip_address == "192.0.2.50"
    assert row.before_state["attempts"][0]["username"] == "analyst"
    assert sign_in(client, "analyst").status_code == 302


@pytest.mark.parametrize("role_user", ["auditor", "ops"])
def test_other_roles_cannot_lift_a_lockout(
    request: pytest.FixtureRequest, analyst: User, role_user: str
) -> None:
    user = request.getfixturevalue(role_user)
    _lock("analyst")
    attempt = AccessAttempt.objects.get(username="analyst")
    console = Client()
    console.force_login(user)  # itself on the security trail: count from here
    before = PaymentAudit.objects.count()
    console.post("/admin/axes/accessattempt/", {"action": "lift", "_selected_action": [attempt.pk]})
    # Nor delete the records by hand.
    console.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert AccessAttempt.objects.filter(pk=attempt.pk).exists()
    assert PaymentAudit.objects.count() == before
    assert refused(sign_in(Client(), "analyst"))


# --- sessions -----------------------------------------------------------------------------------


def test_signing_in_gives_the_session_a_new_key(client: Client, analyst: User) -> None:
    session = client.session
    session["before_sign_in"] = True
    session.save()
    old_key = client.cookies["sessionid"].value
    assert sign_in(client, "analyst").status_code == 302
    new_key = client.cookies["sessionid"].value
    assert new_key != old_key
    assert not Session.objects.filter(session_key=old_key).exists()
    assert signed_in(client)


def test_a_session_ends_after_fifteen_minutes_idle(
    client: Client, analyst: User, clock: Clock
) -> None:
    assert sign_in(client, "analyst").status_code == 302
    key = client.cookies["sessionid"].value
    for _ in range(4):  # activity every 14 minutes keeps it going, past the idle limit in all
        clock.move(minutes=14)
        assert signed_in(client)
    clock.move(minutes=15)
    answer = client.get("/kyc/")
    assert answer.status_code == 302 and answer["Location"].startswith("/admin/login/")
    # The row has expired in the database (or is gone): the key is worth nothing.
    assert not Session.objects.filter(session_key=key, expire_date__gt=clock.now).exists()
    assert not signed_in(client)


def test_the_idle_limit_is_checked_against_the_session_own_clock(
    client: Client, analyst: User, clock: Clock, settings: Any
) -> None:
    # Shorter than the cookie and database expiry: only config.sessions can end it.
    settings.SESSION_IDLE_SECONDS = 10 * 60
    assert sign_in(client, "analyst").status_code == 302
    key = client.cookies["sessionid"].value
    clock.move(minutes=9)
    assert signed_in(client)
    clock.move(minutes=10)
    answer = client.get("/kyc/", follow=True)
    assert "without activity" in answer.content.decode()
    assert not Session.objects.filter(session_key=key).exists()


def test_a_session_ends_twelve_hours_after_sign_in_however_active(
    client: Client, analyst: User, clock: Clock
) -> None:
    assert sign_in(client, "analyst").status_code == 302
    key = client.cookies["sessionid"].value
    for _ in range(71):  # a request every 10 minutes, for 11 h 50 min
        clock.move(minutes=10)
        assert client.get("/healthz").status_code == 200
        assert signed_in(client)
    clock.move(minutes=10)
    answer = client.get("/kyc/")
    assert answer.status_code == 302 and answer["Location"].startswith("/admin/login/")
    assert not Session.objects.filter(session_key=key).exists()


def test_an_expired_session_gets_a_json_401_under_the_api(
    client: Client, ops: User, clock: Clock
) -> None:
    assert sign_in(client, "ops").status_code == 302
    for _ in range(71):
        clock.move(minutes=10)
        assert client.get("/api/v1/payments/").status_code == 200
    clock.move(minutes=10)
    answer = client.get("/api/v1/payments/")
    assert answer.status_code == 401 and answer.json()["type"] == "session_expired"
    assert not Session.objects.exists()


def test_a_signed_in_session_without_the_sign_in_time_is_ended(
    client: Client, analyst: User
) -> None:
    client.force_login(analyst)
    session = client.session
    del session["signed_in_at"]
    session.save()
    assert client.get("/kyc/").status_code == 302
    assert not Session.objects.exists()


def test_signing_out_ends_the_session_on_the_server(analyst: User) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get("/admin/login/")
    token = browser.cookies["csrftoken"].value
    browser.post(
        "/admin/login/?next=/kyc/",
        {"username": "analyst", "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    page = browser.get("/kyc/")
    assert page.status_code == 200
    old_key = browser.cookies["sessionid"].value
    csrf = page.context["csrf_token"]

    # Without the CSRF token the sign-out is refused and the session goes on.
    assert browser.post("/admin/logout/").status_code == 403
    assert Session.objects.filter(session_key=old_key).exists()

    assert browser.post("/admin/logout/", {"csrfmiddlewaretoken": str(csrf)}).status_code == 302
    assert not Session.objects.filter(session_key=old_key).exists()
    # Someone who kept a copy of the old cookie is not signed in.
    thief = Client()
    thief.cookies["sessionid"] = old_key
    assert thief.get("/kyc/").status_code == 302


@pytest.mark.parametrize(
    ("fixture", "url"),
    [
        ("analyst", "/kyc/"),
        ("ops", "/payments/"),
        ("ops", "/disputes/"),
        ("auditor", "/audits/"),
        ("administrator", "/admin/"),
    ],
)
def test_every_screen_shows_the_name_and_a_sign_out_button(
    request: pytest.FixtureRequest, client: Client, fixture: str, url: str
) -> None:
    user = request.getfixturevalue(fixture)
    client.force_login(user)
    body = client.get(url).content.decode()
    assert user.username in body
    assert 'action="/admin/logout/"' in body and 'method="post"' in body
    assert "csrfmiddlewaretoken" in body
