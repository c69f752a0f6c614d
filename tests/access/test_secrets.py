"""Secrets are nobody's to read (issue #10, point 2): TOTP keys, token hashes, session keys and
passwords are never shown after creation, to any role, superusers included."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits import context
from audits.models import PaymentAudit
from payments.integration.tokens import api_token_create
from payments.models import ApiToken
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

ADDR = "203.0.113.7"


@pytest.fixture
def device(administrator: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=administrator, name="admin's phone", confirmed=True)


def _client(user: User) -> Client:
    client = Client(REMOTE_ADDR=ADDR)
    client.force_login(user)
    return client


def _device_pages(device: TOTPDevice) -> list[str]:
    base = "/admin/otp_totp/totpdevice/"
    return [base, f"{base}{device.pk}/change/", f"{base}{device.pk}/config/"]


def test_an_auditor_reads_no_totp_device(auditor: User, device: TOTPDevice) -> None:
    client = _client(auditor)
    for url in [*_device_pages(device), f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/"]:
        response = client.get(url, follow=True)
        assert response.status_code in (403, 404), url
        assert device.key not in response.content.decode()
    assert device.key not in client.get("/admin/").content.decode()


def test_a_superuser_sees_devices_without_their_keys(admin_client, device: TOTPDevice) -> None:
    changelist, change, config = (
        admin_client.get(url, follow=True) for url in _device_pages(device)
    )
    assert changelist.status_code == 200 and "admin&#x27;s phone" in changelist.content.decode()
    assert change.status_code == 200
    # django-otp's key-and-QR-code pages are gone (the address falls through to "no such device")
    for name in ("admin:otp_totp_totpdevice_config", "admin:otp_totp_totpdevice_qrcode"):
        with pytest.raises(NoReverseMatch):
            reverse(name, kwargs={"pk": device.pk})
    qrcode = admin_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/", follow=True)
    for page in (changelist, change, config, qrcode):
        html = page.content.decode()
        assert device.key not in html and device.key.upper() not in html
        assert "otpauth://" not in html and "QR Code" not in html
    # No device is made in the console: whoever made it would have seen the key.
    assert admin_client.get("/admin/otp_totp/totpdevice/add/").status_code == 403


def test_the_auditor_role_reads_business_records_and_trails_not_credential_stores(
    auditor: User,
) -> None:
    for permission in (
        "auth.view_user",
        "auth.view_group",
        "auth.view_permission",
        "otp_totp.view_totpdevice",
        "sessions.view_session",
        "payments.view_apitoken",
    ):
        assert not auditor.has_perm(permission), permission
    for permission in (
        "payments.view_payment",
        "payments.view_merchant",
        "kyc.view_kyccase",
        "audits.view_paymentaudit",
        "auditlog.view_logentry",
    ):
        assert auditor.has_perm(permission), permission
    client = _client(auditor)
    assert client.get("/admin/auth/user/").status_code == 403
    assert client.get("/admin/payments/apitoken/").status_code == 403
    assert client.get("/audits/").status_code == 200


def test_no_password_hash_or_summary_on_the_user_page(admin_client, analyst: User) -> None:
    html = admin_client.get(f"/admin/auth/user/{analyst.pk}/change/").content.decode()
    algorithm, iterations, salt, digest = analyst.password.split("$")
    assert "A password is set." in html
    for part in (analyst.password, salt[:6], digest[:6], algorithm, f">{iterations}<"):
        assert part not in html


def test_sessions_are_not_in_the_console(admin_client) -> None:
    assert admin_client.get("/admin/sessions/session/").status_code == 404
    key = admin_client.session.session_key
    assert key not in admin_client.get("/admin/").content.decode()


def test_a_token_hash_is_not_shown(admin_client, administrator: User) -> None:
    token, raw = api_token_create(owner=administrator, name="erp", scopes=["payments:read"])
    for url in ("/admin/payments/apitoken/", f"/admin/payments/apitoken/{token.pk}/change/"):
        html = admin_client.get(url).content.decode()
        assert token.digest not in html and raw not in html
    history = admin_client.get(f"/admin/payments/apitoken/{token.pk}/history/")
    assert token.digest not in history.content.decode()


def test_a_new_token_is_shown_once_on_its_own_page_and_in_no_cookie(
    administrator: User,
) -> None:
    merchant = MerchantFactory()
    client = _client(administrator)
    response = client.post(
        "/admin/payments/apitoken/add/",
        {
            "name": "shop",
            "owner": administrator.pk,
            "merchant": merchant.pk,
            "scopes": ["payments:read"],
            "hours": 12,
        },
    )
    token = ApiToken.objects.get()
    raw = response.context["raw"]
    html = response.content.decode()
    assert response.status_code == 200 and raw in html and "shown only on this page" in html
    assert html.count(raw) == 1
    assert token.digest not in html
    assert "no-store" in response["Cache-Control"]
    # Nothing carries it on: no cookie, no message, no session row.
    assert all(raw not in morsel.value for morsel in response.cookies.values())
    assert all(raw not in morsel.value for morsel in client.cookies.values())
    assert not list(response.context["messages"])
    assert all(raw not in str(s.get_decoded()) for s in Session.objects.all())
    # A second GET (the token's page, the list, the form) does not show it.
    for url in (
        f"/admin/payments/apitoken/{token.pk}/change/",
        "/admin/payments/apitoken/",
        "/admin/payments/apitoken/add/",
    ):
        again = client.get(url)
        assert again.status_code == 200 and raw not in again.content.decode()
        assert all(raw not in morsel.value for morsel in again.cookies.values())
    # Its issue is on the owner's security trail, without the hash.
    row = PaymentAudit.objects.get(action_type="security.apitoken.create")
    assert (row.user_id, row.ip_address) == (administrator.pk, ADDR)
    assert token.digest not in str(row.after_state) and raw not in str(row.after_state)


def test_a_refused_token_form_shows_and_writes_nothing(administrator: User) -> None:
    client = _client(administrator)
    before = PaymentAudit.objects.count()
    response = client.post(
        "/admin/payments/apitoken/add/",
        {"name": "shop", "owner": administrator.pk, "scopes": [], "hours": 10_000},
    )
    assert response.status_code == 200 and "raw" not in response.context
    assert not ApiToken.objects.exists()
    assert PaymentAudit.objects.count() == before


def test_an_auditor_cannot_issue_a_token(auditor: User) -> None:
    client = _client(auditor)
    before = PaymentAudit.objects.count()
    response = client.post(
        "/admin/payments/apitoken/add/",
        {"name": "x", "owner": auditor.pk, "scopes": ["payments:read"], "hours": 1},
    )
    assert response.status_code == 403
    assert not ApiToken.objects.exists()
    assert PaymentAudit.objects.count() == before
    assert context.current().actor is None
