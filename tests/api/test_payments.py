"""Payments over the API: create and refund with Idempotency-Key, cancel, read, list."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.utils import timezone

from audits.models import PaymentAudit
from payments.integration.idempotency import fingerprint
from payments.models import IdempotencyRecord, Payment, Refund
from payments.services.payments import payment_authorize
from tests.api.conftest import client_for, issue
from tests.conftest import run_at_once
from tests.payments.factories import CapturedPaymentFactory, MerchantFactory, PaymentFactory
from tests.payments.helpers import gateway_payment

BODY = {"gateway": "stripe", "amount": 2_500, "currency": "eur", "payment_method": "pm_card_visa"}


@pytest.fixture
def merchant(db):
    return MerchantFactory()


@pytest.fixture
def raw(integration_user, merchant) -> str:
    return issue(integration_user, ["payments:read", "payments:write"], merchant=merchant)


def _create(raw: str, key: str = "order-1", body: dict | None = None):
    return client_for(raw, HTTP_IDEMPOTENCY_KEY=key).post(
        "/api/v1/payments/", body or BODY, format="json"
    )


@pytest.mark.django_db
def test_create_charges_through_the_gateway_and_is_audited_as_the_api(
    local_stripe, raw, merchant, integration_user
) -> None:
    response = _create(raw)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["merchant"], body["status"], body["currency"]) == (merchant.pk, "captured", "EUR")
    assert body["card_last4"] == "4242" and "payment_method" not in body
    row = PaymentAudit.objects.filter(object_type="payments.payment").order_by("created_at")[0]
    assert (row.user_id, row.action_type) == (integration_user.pk, "api.payment.create")


@pytest.mark.django_db
def test_the_same_key_and_body_replays_the_first_answer(local_stripe, raw) -> None:
    first = _create(raw)
    again = _create(raw)
    assert again.status_code == 201 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_422_and_changes_nothing(local_stripe, raw) -> None:
    _create(raw)
    response = _create(raw, body={**BODY, "amount": 9_999})
    assert response.status_code == 422
    assert response.json()["type"] == "idempotency_key_reused"
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_a_request_still_in_flight_is_409(raw, integration_user, merchant) -> None:
    # What the first request leaves while it runs: the record, no answer yet.
    request = SimpleNamespace(method="POST", path="/api/v1/payments/", data=BODY)
    IdempotencyRecord.objects.create(
        owner=integration_user,
        scope=f"merchant:{merchant.pk}",
        key="order-1",
        endpoint="POST /api/v1/payments/",
        fingerprint=fingerprint(request),
    )
    response = _create(raw)
    assert response.status_code == 409 and response.json()["type"] == "idempotency_in_flight"
    assert Payment.objects.count() == 0


@pytest.mark.django_db
def test_a_key_is_forgotten_after_24_hours(local_stripe, raw) -> None:
    _create(raw)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    with transaction.atomic():  # the payment made with the key is as old
        first = Payment.objects.get()
        first.created_at = timezone.now() - timedelta(hours=25)
        first.save()
    assert _create(raw).status_code == 201
    assert Payment.objects.count() == 2


@pytest.mark.django_db
def test_a_missing_key_is_400_naming_the_header(raw) -> None:
    response = client_for(raw).post("/api/v1/payments/", BODY, format="json")
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]


@pytest.mark.django_db
def test_a_declined_card_is_402_and_its_answer_is_kept_for_retries(local_stripe, raw) -> None:
    body = {**BODY, "payment_method": "pm_card_chargeCustomerFail"}
    first = _create(raw, body=body)
    assert first.status_code == 402 and first.json()["type"] == "gateway_declined"
    assert _create(raw, body=body).json() == first.json()
    assert Payment.objects.get().status == "failed"


@pytest.mark.django_db
def test_a_card_number_is_refused_by_name(raw) -> None:
    response = _create(raw, body={**BODY, "payment_method": "4242 4242 4242 4242"})
    assert response.status_code == 400
    assert "payment_method" in response.json()["errors"]
    assert "4242 4242" not in response.content.decode()


@pytest.mark.django_db
def test_refund_cancel_read(local_stripe, raw, merchant) -> None:
    captured = gateway_payment(merchant=merchant, amount=5_000)
    client = client_for(raw, HTTP_IDEMPOTENCY_KEY="refund-1")
    refund = client.post(
        f"/api/v1/payments/{captured.pk}/refunds/",
        {"amount": 1_000, "reason": "duplicate"},
        format="json",
    )
    assert refund.status_code == 201, refund.content
    assert refund.json()["amount"] == 1_000
    too_much = client_for(raw, HTTP_IDEMPOTENCY_KEY="refund-2").post(
        f"/api/v1/payments/{captured.pk}/refunds/",
        {"amount": 4_001, "reason": "duplicate"},
        format="json",
    )
    assert too_much.status_code == 422 and too_much.json()["type"] == "refund_exceeds_captured"
    not_cancelable = client_for(raw).post(f"/api/v1/payments/{captured.pk}/cancel/")
    assert not_cancelable.status_code == 409
    assert not_cancelable.json()["type"] == "invalid_transition"
    authorized = gateway_payment(merchant=merchant, amount=5_000, capture=False)
    canceled = client_for(raw).post(f"/api/v1/payments/{authorized.pk}/cancel/")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    read = client_for(raw).get(f"/api/v1/payments/{captured.pk}/")
    assert read.json()["refunded_amount"] == 1_000


@pytest.mark.django_db
def test_a_refund_above_the_threshold_waits_for_approval(raw, merchant, settings) -> None:
    settings.REFUND_APPROVAL_THRESHOLD = 500
    payment = CapturedPaymentFactory(merchant=merchant)
    response = client_for(raw, HTTP_IDEMPOTENCY_KEY="big").post(
        f"/api/v1/payments/{payment.pk}/refunds/",
        {"amount": 1_000, "reason": "duplicate"},
        format="json",
    )
    assert response.status_code == 202
    assert (response.json()["action"], response.json()["status"]) == ("refund", "pending")
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_list_filters_and_pages_with_a_cursor(raw, merchant) -> None:
    for amount in (100, 200, 300, 400):
        PaymentFactory(merchant=merchant, amount=amount)
    CapturedPaymentFactory(merchant=merchant, amount=250)
    PaymentFactory(amount=250)  # another merchant's
    client = client_for(raw)
    got = client.get("/api/v1/payments/?status=pending&amount_min=150&amount_max=350").json()
    assert [p["amount"] for p in got["results"]] == [300, 200]
    first = client.get("/api/v1/payments/?page_size=2").json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    amounts = [p["amount"] for page in (first, second, third) for p in page["results"]]
    assert amounts == [250, 400, 300, 200, 100]
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    assert client.get("/api/v1/payments/", {"created_after": later}).json()["results"] == []
    bad = client.get("/api/v1/payments/?status=bogus&amount_min=x")
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"status", "amount_min"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_a_create_make_one_payment(local_stripe, raw) -> None:
    results = run_at_once(*[lambda: _create(raw, key="race") for _ in range(4)])
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    assert Payment.objects.count() == 1
    ids = {r.json()["id"] for r in results if r.status_code == 201}
    assert ids == {Payment.objects.get().pk}
    assert _create(raw, key="race").json()["id"] == Payment.objects.get().pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_a_refund_make_one_refund(local_stripe, raw, merchant) -> None:
    # Paid at the (local) gateway, so the one refund is really sent and holds its amount.
    payment = payment_authorize(
        merchant=merchant,
        gateway="stripe",
        amount=5_000,
        currency="EUR",
        payment_method="pm_card_visa",
    )

    def refund():
        return client_for(raw, HTTP_IDEMPOTENCY_KEY="refund-race").post(
            f"/api/v1/payments/{payment.pk}/refunds/",
            {"amount": 1_000, "reason": "duplicate"},
            format="json",
        )

    results = run_at_once(*[refund for _ in range(4)])
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    assert Refund.objects.count() == 1
    assert Payment.objects.get(pk=payment.pk).refunded_amount == 1_000
