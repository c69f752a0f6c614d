"""Every endpoint x {no token, expired, revoked, wrong scope, other merchant's token, right
token}: the status, and that a refusal changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile

from audits.models import PaymentAudit
from kyc import services as kyc_services
from kyc.models import KycCase, KycDocument
from payments.models import (
    ApiToken,
    ChargebackEvidence,
    IdempotencyRecord,
    Merchant,
    Payment,
    Refund,
)
from tests.api.conftest import client_for, expire, issue
from tests.payments.factories import ChargebackFactory, MerchantFactory
from tests.payments.helpers import gateway_payment

pytestmark = pytest.mark.django_db

ALL_SCOPES = list(ApiToken.SCOPES)
PDF = b"%PDF-1.4 passport scan\n%%EOF\n"


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: Callable[[Any], str]
    scope: str
    ok: int
    body: Callable[[Any], dict] | None = None
    staff_only: bool = False
    auditor: bool = False
    listing: bool = False
    format: str = "json"


ENDPOINTS = [
    Endpoint(
        "merchant list",
        "get",
        lambda w: "/api/v1/merchants/",
        "merchants:read",
        200,
        staff_only=True,
        listing=True,
    ),
    Endpoint(
        "merchant create",
        "post",
        lambda w: "/api/v1/merchants/",
        "merchants:write",
        201,
        body=lambda w: {
            "legal_name": "New Ltd",
            "country": "GB",
            "contact_email": "new@example.com",
        },
        staff_only=True,
    ),
    Endpoint(
        "merchant read",
        "get",
        lambda w: f"/api/v1/merchants/{w.merchant.pk}/",
        "merchants:read",
        200,
        staff_only=True,
    ),
    Endpoint(
        "merchant contact update",
        "patch",
        lambda w: f"/api/v1/merchants/{w.merchant.pk}/",
        "merchants:write",
        200,
        body=lambda w: {"contact_name": "Changed"},
        staff_only=True,
    ),
    Endpoint(
        "payment list", "get", lambda w: "/api/v1/payments/", "payments:read", 200, listing=True
    ),
    Endpoint(
        "payment create",
        "post",
        lambda w: "/api/v1/payments/",
        "payments:write",
        201,
        body=lambda w: {
            "merchant": w.merchant.pk,
            "gateway": "stripe",
            "amount": 2500,
            "currency": "EUR",
            "payment_method": "pm_card_visa",
        },
    ),
    Endpoint(
        "payment read", "get", lambda w: f"/api/v1/payments/{w.captured.pk}/", "payments:read", 200
    ),
    Endpoint(
        "payment cancel",
        "post",
        lambda w: f"/api/v1/payments/{w.authorized.pk}/cancel/",
        "payments:write",
        200,
    ),
    Endpoint(
        "payment refund",
        "post",
        lambda w: f"/api/v1/payments/{w.captured.pk}/refunds/",
        "payments:write",
        201,
        body=lambda w: {"amount": 100, "reason": "requested_by_customer"},
    ),
    Endpoint(
        "chargeback list",
        "get",
        lambda w: "/api/v1/chargebacks/",
        "payments:read",
        200,
        listing=True,
    ),
    Endpoint(
        "chargeback read",
        "get",
        lambda w: f"/api/v1/chargebacks/{w.chargeback.pk}/",
        "payments:read",
        200,
    ),
    Endpoint(
        "chargeback evidence",
        "post",
        lambda w: f"/api/v1/chargebacks/{w.chargeback.pk}/evidence/",
        "payments:write",
        200,
        body=lambda w: {"text": "Delivered, signed.", "submit": False},
    ),
    Endpoint(
        "kyc case create",
        "post",
        lambda w: "/api/v1/kyc-cases/",
        "kyc:write",
        201,
        body=lambda w: {"merchant": w.merchant.pk, "kind": "kyb"},
    ),
    Endpoint("kyc case list", "get", lambda w: "/api/v1/kyc-cases/", "kyc:read", 200, listing=True),
    Endpoint(
        "kyc case status", "get", lambda w: f"/api/v1/kyc-cases/{w.draft.pk}/", "kyc:read", 200
    ),
    Endpoint(
        "kyc case submit",
        "post",
        lambda w: f"/api/v1/kyc-cases/{w.draft.pk}/submit/",
        "kyc:write",
        200,
    ),
    Endpoint(
        "kyc document upload",
        "post",
        lambda w: f"/api/v1/kyc-cases/{w.draft.pk}/documents/",
        "kyc:write",
        201,
        body=lambda w: {
            "document_type": "passport",
            "file": SimpleUploadedFile("id.pdf", PDF, content_type="application/pdf"),
        },
        format="multipart",
    ),
    Endpoint(
        "kyc case resubmit",
        "post",
        lambda w: f"/api/v1/kyc-cases/{w.waiting.pk}/resubmit/",
        "kyc:write",
        200,
    ),
    Endpoint(
        "audit trail",
        "get",
        lambda w: f"/api/v1/audit-trail/?object_type=payments.payment&object_id={w.captured.pk}",
        "audit:read",
        200,
        staff_only=True,
        auditor=True,
    ),
]

CASES = ["no token", "expired", "revoked", "wrong scope", "other merchant", "right token"]


@dataclass
class World:
    merchant: Merchant
    other: Merchant
    captured: Payment
    authorized: Payment
    chargeback: Any
    draft: KycCase
    waiting: KycCase


@pytest.fixture
def world(local_stripe: str, analyst) -> World:
    merchant, other = MerchantFactory(), MerchantFactory()

    def pay(capture: bool) -> Payment:
        return gateway_payment(merchant=merchant, amount=5_000, capture=capture)

    captured = pay(True)
    draft = kyc_services.kyc_case_create(merchant=merchant, kind="kyb")
    waiting = kyc_services.kyc_case_submit(
        case=kyc_services.kyc_case_create(merchant=merchant, kind="kyc")
    )
    kyc_services.kyc_case_assign_self(case=waiting, actor=analyst)
    kyc_services.kyc_case_start_review(case=waiting, actor=analyst)
    waiting = kyc_services.kyc_case_request_information(
        case=waiting, message="A recent proof of address", actor=analyst
    )
    return World(
        merchant,
        other,
        captured,
        pay(False),
        ChargebackFactory(payment=captured),
        draft,
        waiting,
    )


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (
            KycCase,
            KycDocument,
            Merchant,
            Payment,
            Refund,
            ChargebackEvidence,
            PaymentAudit,
            LogEntry,
            IdempotencyRecord,
        )
    }


def _token(
    case: str, endpoint: Endpoint, world: World, administrator, auditor, integration_user
) -> str | None:
    staff = endpoint.staff_only
    owner = (auditor if endpoint.auditor else administrator) if staff else integration_user
    merchant = None if staff else world.merchant
    if case == "no token":
        return None
    if case == "other merchant":
        return issue(integration_user, ALL_SCOPES, merchant=world.other)
    if case == "wrong scope":
        return issue(owner, [s for s in ALL_SCOPES if s != endpoint.scope], merchant=merchant)
    raw = issue(owner, [endpoint.scope], merchant=merchant)
    if case == "expired":
        expire(raw)
    elif case == "revoked":
        services_token = ApiToken.objects.get(prefix=raw.split("_")[1])
        from payments.integration.tokens import api_token_revoke

        api_token_revoke(token=services_token)
    return raw


def _expected(case: str, endpoint: Endpoint) -> int:
    if case in ("no token", "expired", "revoked"):
        return 401
    if case == "wrong scope":
        return 403
    if case == "other merchant":
        if endpoint.staff_only:
            return 403
        if endpoint.listing:
            return 200  # the list answers, with none of the other merchant's rows
        if endpoint.name in ("payment create", "kyc case create"):
            return 400  # the other merchant's id is unknown to this token
        return 404
    return endpoint.ok


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_endpoint_answers_each_kind_of_token(
    endpoint: Endpoint, case: str, world: World, administrator, auditor, integration_user
) -> None:
    raw = _token(case, endpoint, world, administrator, auditor, integration_user)
    client = client_for(raw, HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex) if raw else client_for(None)
    before = _counts()
    body = endpoint.body(world) if endpoint.body else None
    response = getattr(client, endpoint.method)(endpoint.path(world), body, format=endpoint.format)
    expected = _expected(case, endpoint)
    assert response.status_code == expected, response.content
    payload = response.json()
    if expected >= 400:
        assert set(payload) == {"type", "message", "errors"}, payload
        assert _counts() == before, "a refused request changed something"
    if case == "other merchant" and endpoint.listing and not endpoint.staff_only:
        assert payload["results"] == []
    if expected == 401:
        assert response["WWW-Authenticate"] == "Bearer"
