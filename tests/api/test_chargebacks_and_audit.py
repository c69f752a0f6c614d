"""Chargebacks (read, evidence) and the audit trail over the API."""

from __future__ import annotations

import pytest

from payments.models import Chargeback, ChargebackEvidence
from tests.api.conftest import client_for, issue
from tests.payments.factories import (
    CapturedPaymentFactory,
    ChargebackFactory,
    MerchantFactory,
)

pytestmark = pytest.mark.django_db


def test_evidence_is_saved_then_submitted_once(local_braintree, integration_user) -> None:
    merchant = MerchantFactory()
    payment = CapturedPaymentFactory(merchant=merchant, gateway="braintree", gateway_reference="bt")
    chargeback = ChargebackFactory(payment=payment, gateway="braintree", gateway_reference="dp_1")
    client = client_for(issue(integration_user, ["payments:write"], merchant=merchant))
    url = f"/api/v1/chargebacks/{chargeback.pk}/evidence/"
    draft = client.post(url, {"text": "Draft.", "submit": False}, format="json")
    assert draft.status_code == 200 and draft.json()["submitted_at"] is None
    sent = client.post(url, {"text": "Signed delivery note."}, format="json")
    assert sent.status_code == 200 and sent.json()["submitted_at"]
    assert Chargeback.objects.get().status == "under_review"
    again = client.post(url, {"text": "Changed."}, format="json")
    assert (again.status_code, again.json()["type"]) == (409, "evidence_already_submitted")
    assert ChargebackEvidence.objects.get().text == "Signed delivery note."


def test_chargebacks_list_only_the_tokens_merchant(integration_user) -> None:
    merchant = MerchantFactory()
    mine = ChargebackFactory(payment__merchant=merchant)
    ChargebackFactory()
    client = client_for(issue(integration_user, ["payments:read"], merchant=merchant))
    results = client.get("/api/v1/chargebacks/").json()["results"]
    assert [c["id"] for c in results] == [mine.pk]
    assert results[0]["evidence_submitted_at"] is None


def test_the_audit_trail_of_an_object_for_an_auditor(auditor, administrator) -> None:
    merchant = MerchantFactory()
    writer = client_for(issue(administrator, ["merchants:write"]))
    writer.patch(f"/api/v1/merchants/{merchant.pk}/", {"contact_name": "Bo"}, format="json")
    client = client_for(issue(auditor, ["audit:read"]))
    response = client.get(
        "/api/v1/audit-trail/", {"object_type": "payments.merchant", "object_id": merchant.pk}
    )
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["action_type"] for r in rows] == ["api.merchant.update", "system.merchant.create"]
    assert rows[0]["username"] == "administrator"
    assert rows[0]["after_state"]["contact_name"] == "Bo"
    bad = client.get("/api/v1/audit-trail/", {"object_type": "auth.user", "object_id": 1})
    assert bad.status_code == 400 and "object_type" in bad.json()["errors"]


def test_a_token_with_audit_scope_is_refused_if_its_owner_is_not_an_auditor(ops) -> None:
    client = client_for(issue(ops, ["audit:read"]))
    response = client.get(
        "/api/v1/audit-trail/", {"object_type": "payments.merchant", "object_id": 1}
    )
    assert response.status_code == 403
