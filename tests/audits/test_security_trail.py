"""Privilege changes are audited like money (issue #10, point 3): each one is a `security.*`
row in payment_audits, with actor, IP and device, hash-chained and append-only."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits import context, roles, security
from audits.models import PaymentAudit
from payments.integration.tokens import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db

ADDR = "198.51.100.23"
PASSWORD = "a-long-test-passw0rd"


_since: list[datetime] = []


@pytest.fixture
def after_fixtures() -> Iterator[None]:
    """Ask for it last: rows the fixtures wrote (staff created, roles given) are not the test's."""
    _since[:] = [timezone.now()]
    yield
    _since.clear()


def _rows(action: str, object_id: object, object_type: str = "auth.user") -> list[PaymentAudit]:
    rows = PaymentAudit.objects.filter(
        action_type=f"security.{action}", object_type=object_type, object_id=str(object_id)
    )
    if _since:
        rows = rows.filter(created_at__gt=_since[0])
    return list(rows.order_by("created_at", "seq"))


def _one(action: str, object_id: object, object_type: str = "auth.user") -> PaymentAudit:
    rows = _rows(action, object_id, object_type)
    assert len(rows) == 1, [r.action_type for r in rows]
    return rows[0]


def _console(user: User) -> Client:
    client = Client(REMOTE_ADDR=ADDR, HTTP_X_DEVICE_ID="console-device-1")
    client.force_login(user)
    return client


def _user_form(user: User, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "is_staff": "on",
        "groups": list(user.groups.values_list("pk", flat=True)),
        "user_permissions": [],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
    }
    data.update(changes)
    return data


def _code(device: TOTPDevice) -> int:
    return totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)


def _verifies() -> None:
    out = io.StringIO()
    call_command("verify_audit_chain", stdout=out, stderr=io.StringIO())
    assert "OK: every chain verifies." in out.getvalue()


def _no_secret_in(rows: list[PaymentAudit], *secrets: str) -> None:
    text = json.dumps([[r.before_state, r.after_state] for r in rows])
    for secret in secrets:
        assert secret not in text


def test_granting_superuser_and_a_role_in_the_console(
    administrator: User, analyst: User, after_fixtures: None
) -> None:
    client = _console(administrator)
    role = Group.objects.get(name=roles.COMPLIANCE_OFFICER)
    response = client.post(
        f"/admin/auth/user/{analyst.pk}/change/",
        _user_form(analyst, is_superuser="on", groups=[role.pk]),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    update = _one("user.update", analyst.pk)
    assert update.before_state["is_superuser"] is False
    assert update.after_state["is_superuser"] is True
    assert update.after_state["changed"] == ["is_superuser"]
    assert (update.user_id, update.ip_address, update.device_id) == (
        administrator.pk,
        ADDR,
        "console-device-1",
    )
    added = _one("user.groups_add", analyst.pk)
    removed = _one("user.groups_remove", analyst.pk)
    assert added.after_state["groups_added"] == [roles.COMPLIANCE_OFFICER]
    assert removed.after_state["groups_removed"] == [roles.KYC_ANALYST]
    assert added.user_id == removed.user_id == administrator.pk
    _no_secret_in([update, added, removed], analyst.password)
    _verifies()


def test_creating_a_user_in_the_console(administrator: User, after_fixtures: None) -> None:
    client = _console(administrator)
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "newcomer",
            "usable_password": "true",
            "password1": "An0ther-long-passphrase",
            "password2": "An0ther-long-passphrase",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    newcomer = User.objects.get(username="newcomer")
    row = _one("user.create", newcomer.pk)
    assert (row.user_id, row.ip_address) == (administrator.pk, ADDR)
    assert row.after_state["password"] == "set"
    assert row.after_state["is_staff"] is False
    _no_secret_in([row], newcomer.password, "An0ther-long-passphrase")


def test_a_refused_console_change_writes_nothing(
    auditor: User, analyst: User, after_fixtures: None
) -> None:
    client = _console(auditor)
    before = PaymentAudit.objects.count()
    response = client.post(
        f"/admin/auth/user/{analyst.pk}/change/", _user_form(analyst, is_superuser="on")
    )
    assert response.status_code == 403
    analyst.refresh_from_db()
    assert not analyst.is_superuser
    assert PaymentAudit.objects.count() == before


def test_memberships_and_permissions_changed_in_code(
    administrator: User, analyst: User, after_fixtures: None
) -> None:
    role = Group.objects.get(name=roles.AUDITOR)
    refund = Permission.objects.get(codename="approve_refund")
    with transaction.atomic(), context.bind(actor=administrator, ip_address=ADDR):
        analyst.groups.add(role)
        role.user_set.remove(analyst)  # the reverse side
        analyst.user_permissions.add(refund)
        analyst.user_permissions.clear()
        analyst.is_staff = False
        analyst.save()
    assert _one("user.groups_add", analyst.pk).after_state["groups_added"] == [roles.AUDITOR]
    assert _one("user.groups_remove", analyst.pk).after_state["groups_removed"] == [roles.AUDITOR]
    perms = _rows("user.user_permissions_add", analyst.pk) + _rows(
        "user.user_permissions_remove", analyst.pk
    )
    assert perms[0].after_state["user_permissions_added"] == ["payments.approve_refund"]
    assert perms[1].after_state["user_permissions_removed"] == ["payments.approve_refund"]
    assert _one("user.update", analyst.pk).after_state["changed"] == ["is_staff"]
    rows = PaymentAudit.objects.filter(
        object_type="auth.user", object_id=str(analyst.pk), created_at__gte=perms[0].created_at
    )
    assert {(r.user_id, r.ip_address) for r in rows} == {(administrator.pk, ADDR)}
    _verifies()


def test_a_role_given_a_permission_in_the_console_and_in_code(
    administrator: User, after_fixtures: None
) -> None:
    role = Group.objects.get(name=roles.PAYMENTS_OPERATIONS)
    extra = Permission.objects.get(codename="decide_kyccase")
    current = list(role.permissions.values_list("pk", flat=True))
    response = _console(administrator).post(
        f"/admin/auth/group/{role.pk}/change/",
        {"name": role.name, "permissions": [*current, extra.pk]},
    )
    assert response.status_code == 302
    row = _one("group.permissions_add", role.pk, "auth.group")
    assert row.after_state["permissions_added"] == ["kyc.decide_kyccase"]
    assert (row.user_id, row.ip_address) == (administrator.pk, ADDR)
    with transaction.atomic(), context.bind(actor=administrator):
        extra.group_set.remove(role)  # the reverse side
    removed = _one("group.permissions_remove", role.pk, "auth.group")
    assert removed.after_state["permissions_removed"] == ["kyc.decide_kyccase"]
    _verifies()


def test_adding_and_removing_a_second_factor(
    administrator: User, analyst: User, after_fixtures: None
) -> None:
    with transaction.atomic(), context.bind(actor=administrator, ip_address=ADDR):
        device = TOTPDevice.objects.create(user=analyst, name="phone", confirmed=True)
    added = _one("device.add", analyst.pk)
    assert added.after_state["name"] == "phone" and added.user_id == administrator.pk
    # A verification moves the device's counters: not a change of who holds it.
    device.verify_token(f"{(_code(device) + 1) % 1_000_000:06d}")
    assert not _rows("device.update", analyst.pk)
    response = _console(administrator).post(
        f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    removed = _one("device.remove", analyst.pk)
    assert (removed.user_id, removed.ip_address) == (administrator.pk, ADDR)
    _no_secret_in([added, removed], device.key)
    _verifies()


def test_issuing_and_revoking_a_token(administrator: User, ops: User, after_fixtures: None) -> None:
    with context.bind(ip_address=ADDR):
        token, raw = api_token_create(
            owner=ops, name="erp", scopes=["payments:read"], actor=administrator
        )
        api_token_revoke(token=token, actor=administrator)
    created = _one("apitoken.create", ops.pk)
    revoked = _one("apitoken.revoke", ops.pk)
    assert created.after_state["prefix"] == token.prefix
    assert revoked.before_state["revoked_at"] is None and revoked.after_state["revoked_at"]
    assert {(r.user_id, r.ip_address) for r in (created, revoked)} == {(administrator.pk, ADDR)}
    _no_secret_in([created, revoked], raw, token.digest)
    _verifies()


def test_signing_in_failing_and_signing_out(analyst: User, after_fixtures: None) -> None:
    client = Client(REMOTE_ADDR=ADDR)
    wrong = client.post("/admin/login/", {"username": "analyst", "password": "not-it"})
    assert wrong.status_code == 200
    failed = _one("signin_failed", analyst.pk)
    assert failed.user_id == context.system_user_id() and failed.ip_address == ADDR
    assert failed.after_state["username"] == "analyst"
    assert failed.after_state["reason"] == "password"
    client.post("/admin/login/", {"username": "nobody-here", "password": "x"})
    unknown = _one("signin_failed", "unknown")
    assert unknown.after_state["username"] == "nobody-here"
    ok = client.post("/admin/login/?next=/kyc/", {"username": "analyst", "password": PASSWORD})
    assert ok.status_code == 302
    signin = _one("signin", analyst.pk)
    assert (signin.user_id, signin.ip_address) == (analyst.pk, ADDR)
    assert signin.device_id  # the device cookie the middleware issued
    client.post("/admin/logout/")
    signout = _one("signout", analyst.pk)
    assert (signout.user_id, signout.ip_address) == (analyst.pk, ADDR)
    _no_secret_in([failed, unknown, signin, signout], PASSWORD, "not-it", analyst.password)
    _verifies()


def test_a_wrong_second_factor_code_is_a_failed_sign_in(
    settings, analyst: User, after_fixtures: None
) -> None:
    settings.STAFF_REQUIRE_OTP = True
    device = TOTPDevice.objects.create(user=analyst, name="phone", confirmed=True)
    Client(REMOTE_ADDR=ADDR).post(
        "/admin/login/",
        {
            "username": "analyst",
            "password": PASSWORD,
            "otp_device": device.persistent_id,
            "otp_token": f"{(_code(device) + 1) % 1_000_000:06d}",
        },
    )
    reasons = [r.after_state["reason"] for r in _rows("signin_failed", analyst.pk)]
    assert "second factor" in reasons
    assert not _rows("signin", analyst.pk)


def test_a_password_change_is_recorded_without_the_hash(
    analyst: User, after_fixtures: None
) -> None:
    old = analyst.password
    with transaction.atomic():
        analyst.set_password("A-brand-new-passphrase-1")
        analyst.save()
    row = _one("user.update", analyst.pk)
    assert row.before_state["password"] == "set" and row.after_state["password"] == "changed"
    _no_secret_in([row], old, analyst.password, "A-brand-new-passphrase-1")


def test_the_security_trail_refuses_an_ordinary_delete(analyst: User, after_fixtures: None) -> None:
    count = PaymentAudit.objects.filter(action_type__startswith="security.").count()
    assert count
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM payment_audits WHERE action_type LIKE 'security.%%'")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE payment_audits SET after_state = NULL WHERE action_type LIKE 'security.%%'"
        )
    assert PaymentAudit.objects.filter(action_type__startswith="security.").count() == count


def test_the_security_trail_is_searchable_in_audits(
    administrator: User, auditor: User, after_fixtures: None
) -> None:
    with transaction.atomic(), context.bind(actor=administrator, ip_address=ADDR):
        auditor.is_superuser = True
        auditor.save()
    client = _console(auditor)
    page = client.get("/audits/", {"object_type": "auth.user", "action": "security.user"})
    html = page.content.decode()
    assert page.status_code == 200 and "security.user.update" in html
    assert "is_superuser" in html  # what changed, in the list
    roles_page = client.get("/audits/", {"action": "security.user.groups"}).content.decode()
    assert f"+ {roles.AUDITOR}" in roles_page
    timeline = client.get(f"/audits/objects/auth.user/{auditor.pk}/").content.decode()
    assert "security.user.update" in timeline and ADDR in timeline
    csv = b"".join(
        client.get("/audits/export.csv", {"action": "security."}).streaming_content
    ).decode()
    assert "security.user.update" in csv


def test_a_failed_sign_in_with_any_username_is_recorded(after_fixtures: None) -> None:
    response = Client(REMOTE_ADDR=ADDR).post(
        "/admin/login/", {"username": "a\x00b", "password": "x"}
    )
    assert response.status_code == 200  # the form refuses a NUL before trying to sign in
    # Another sign-in path (an authentication backend, an API) may send anything.
    security.signin_failed(sender=None, credentials={"username": "a\x00b\ud800", "password": "*"})
    row = _one("signin_failed", "unknown")
    assert row.after_state["username"] == "ab?"
