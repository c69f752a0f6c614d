"""The request context: who (also when DRF authenticates), from which IP, on which device."""

from __future__ import annotations

import ipaddress

import pytest
from auditlog.models import LogEntry
from django.urls import reverse
from rest_framework.test import APIClient

from audits.models import PaymentAudit
from payments.models import Merchant
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db


def _last_audit() -> PaymentAudit:
    return PaymentAudit.objects.order_by("-created_at").first()


def _patch_contact(client, merchant, name: str = "New Contact", **extra) -> None:
    response = client.patch(
        reverse("api-merchant-detail", args=[merchant.pk]),
        {"contact_name": name},
        format="json",
        **extra,
    )
    assert response.status_code == 200, response.content


@pytest.fixture
def api(officer) -> APIClient:
    client = APIClient()
    # Authenticated inside the DRF view, after every middleware has run.
    client.force_authenticate(officer)
    return client


def test_a_request_authenticated_inside_drf_records_its_user(api, officer) -> None:
    merchant = MerchantFactory()
    _patch_contact(api, merchant, REMOTE_ADDR="198.51.100.20")
    row = _last_audit()
    assert row.user_id == officer.pk
    assert row.action_type == "api.merchant.update"
    assert row.ip_address == "198.51.100.20"
    entry = LogEntry.objects.order_by("-timestamp").first()
    assert entry.actor_id == officer.pk
    assert Merchant.objects.get(pk=merchant.pk).contact_name == "New Contact"


def test_a_spoofed_forwarded_for_from_an_untrusted_client_is_ignored(api, settings) -> None:
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    merchant = MerchantFactory()
    _patch_contact(api, merchant, REMOTE_ADDR="198.51.100.20", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert _last_audit().ip_address == "198.51.100.20"
    assert LogEntry.objects.order_by("-timestamp").first().remote_addr == "198.51.100.20"


def test_forwarded_for_from_a_trusted_proxy_is_recorded(api, settings) -> None:
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    merchant = MerchantFactory()
    # The client put a fake first hop; our proxies appended the real client, then themselves.
    _patch_contact(
        api, merchant, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9, 10.0.0.7"
    )
    assert _last_audit().ip_address == "203.0.113.9"


def test_ipv6_clients_are_recorded_in_canonical_form(api) -> None:
    merchant = MerchantFactory()
    _patch_contact(api, merchant, REMOTE_ADDR="2001:0db8:0000:0000:0000:0000:0000:0001")
    assert _last_audit().ip_address == "2001:db8::1"


def test_device_id_header_is_recorded(api) -> None:
    merchant = MerchantFactory()
    _patch_contact(api, merchant, REMOTE_ADDR="198.51.100.20", HTTP_X_DEVICE_ID="laptop-42")
    assert _last_audit().device_id == "laptop-42"
    assert (
        LogEntry.objects.order_by("-timestamp").first().additional_data["device_id"] == "laptop-42"
    )


def test_a_malformed_device_header_is_not_recorded(api) -> None:
    merchant = MerchantFactory()
    _patch_contact(api, merchant, HTTP_X_DEVICE_ID="x" * 65)
    assert _last_audit().device_id != "x" * 65


def test_without_a_header_a_signed_cookie_identifies_the_device(api) -> None:
    merchant = MerchantFactory()
    _patch_contact(api, merchant, "First")
    first = _last_audit().device_id
    assert api.cookies["device_id"].value  # signed, set on the first response
    _patch_contact(api, merchant, "Second")
    assert _last_audit().device_id == first
    # A forged cookie is not believed.
    api.cookies["device_id"] = "forged-device"
    _patch_contact(api, merchant, "Third")
    assert _last_audit().device_id not in {"forged-device", first}


def test_an_admin_action_records_the_signed_in_user(client, officer) -> None:
    client.force_login(officer)
    merchant = MerchantFactory(status=Merchant.Status.ACTIVE)
    response = client.post(
        reverse("admin:payments_merchant_changelist"),
        {"action": "suspend", "_selected_action": [merchant.pk], "reason": "chargeback spike"},
        REMOTE_ADDR="192.0.2.33",
    )
    assert response.status_code == 302
    row = _last_audit()
    assert (row.user_id, row.action_type, row.ip_address) == (
        officer.pk,
        "web.merchant.update",
        "192.0.2.33",
    )
    assert row.before_state["status"] == "active"
    assert row.after_state["status"] == "suspended"
