"""Stripe events in the shapes Stripe sends for an old (2020-08-27) and a current (2024-06-20)
API version (tests/payments/fixtures/stripe), applied by the status of the object they carry and
their creation time; refunds counted once; reads of the current object from a local Stripe
(localstripe) where an event does not carry what we need."""

from __future__ import annotations

import copy
import datetime
import json
import queue
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from payments.gateways import get_gateway
from payments.gateways.stripe import StripeGateway
from payments.models import Chargeback, Payment, Refund, WebhookEvent
from payments.services.refunds import refund_create, refund_submit
from tests.conftest import run_at_once
from tests.payments import stripe_helpers as sh
from tests.payments.factories import CapturedPaymentFactory, MerchantFactory, PaymentFactory
from tests.payments.helpers import gateway_payment, payment_audit_count

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
OLD, CURRENT = "2020-08-27", "2024-06-20"
VERSIONS = [OLD, CURRENT]


@cache
def _fixture(version: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / version / f"{name}.json").read_text())


def shape(version: str, name: str, **fields: Any) -> dict[str, Any]:
    """A Stripe object as that API version sends it, with the fields this case needs."""
    return {**copy.deepcopy(_fixture(version, name)), **fields}


_sequence = iter(range(10**9))


def event(
    version: str, event_type: str, obj: dict[str, Any], *, created: int | None = None
) -> dict[str, Any]:
    return shape(
        version,
        "event",
        id=f"evt_{version.replace('-', '')}_{next(_sequence):06d}",
        type=event_type,
        created=int(time.time()) if created is None else created,
        data={"object": obj},
    )


def refund_obj(
    version: str,
    reference: str,
    amount: int,
    status: str,
    *,
    charge: str = "ch_test",
    intent: str | None = None,
    refund_id: int | None = None,
) -> dict[str, Any]:
    return shape(
        version,
        "refund",
        id=reference,
        amount=amount,
        currency="eur",
        status=status,
        charge=charge,
        payment_intent=intent,
        metadata={"refund_id": str(refund_id)} if refund_id is not None else {},
    )


def charge_obj(version: str, charge: str, intent: str, **fields: Any) -> dict[str, Any]:
    return shape(
        version,
        "charge",
        id=charge,
        payment_intent=intent,
        amount=10_000,
        amount_captured=10_000,
        currency="eur",
        captured=True,
        **fields,
    )


def intent_obj(version: str, intent: str, status: str, **fields: Any) -> dict[str, Any]:
    obj = shape(
        version,
        "payment_intent",
        id=intent,
        amount=10_000,
        currency="eur",
        status=status,
        amount_received=10_000 if status == "succeeded" else 0,
        **fields,
    )
    return obj


def dispute_obj(version: str, dispute: str, charge: str, status: str, **fields: Any) -> dict:
    defaults = {"amount": 10_000, "currency": "eur"}
    return shape(
        version,
        "dispute",
        id=dispute,
        charge=charge,
        payment_intent=None,  # as in Stripe's own fixture: the dispute names only the charge
        status=status,
        **{**defaults, **fields},
    )


@pytest.fixture(autouse=True)
def _stripe_webhooks(settings) -> None:
    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def post(body: dict[str, Any]) -> WebhookEvent:
        # The test runs in a transaction: run what would happen on commit (the processing).
        with django_capture_on_commit_callbacks(execute=True):
            response = sh.post(client, body)
        assert response.status_code == 200, response.content
        return WebhookEvent.objects.get(event_id=body["id"])

    return post


# --- Refunds in both shapes ---------------------------------------------------------------


def test_old_shape_charge_refunded_records_the_refunds_it_embeds(deliver) -> None:
    payment = CapturedPaymentFactory(gateway_reference="pi_old", amount=10_000)
    refunds = {
        "object": "list",
        "data": [refund_obj(OLD, "re_old_1", 4_000, "succeeded", charge="ch_old")],
        "has_more": False,
        "url": "/v1/charges/ch_old/refunds",
    }
    charge = charge_obj(OLD, "ch_old", "pi_old", amount_refunded=4_000, refunds=refunds)
    assert deliver(event(OLD, "charge.refunded", charge)).status == "processed"
    refund = Refund.objects.get()
    assert (refund.payment_id, refund.gateway_reference, refund.amount, refund.status) == (
        payment.pk,
        "re_old_1",
        4_000,
        "succeeded",
    )
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", 4_000)
    assert payment.charge_reference == "ch_old"


def _stripe_payment(amount: int = 10_000) -> Payment:
    return gateway_payment(amount=amount)


def _stripe_charge_of(payment: Payment) -> str:
    intent = get_gateway("stripe").client.v1.payment_intents.retrieve(payment.gateway_reference)
    return (
        intent.latest_charge if isinstance(intent.latest_charge, str) else intent.latest_charge.id
    )


def test_current_shape_charge_refunded_reads_the_refunds_from_stripe(local_stripe, deliver) -> None:
    """Since 2022-11-15 charge.refunded says only amount_refunded: the refund used to be
    marked processed and lost. Now the refunds are read from Stripe."""
    payment = _stripe_payment()
    charge = _stripe_charge_of(payment)
    client = get_gateway("stripe").client
    made_at_stripe = client.v1.refunds.create(
        {"payment_intent": payment.gateway_reference, "amount": 3_000}
    )
    body = event(
        CURRENT,
        "charge.refunded",
        charge_obj(CURRENT, charge, payment.gateway_reference, amount_refunded=3_000),
    )
    assert "refunds" not in body["data"]["object"]
    assert deliver(body).status == "processed"
    refund = Refund.objects.get()
    assert (refund.gateway_reference, refund.amount, refund.status) == (
        made_at_stripe.id,
        3_000,
        "succeeded",
    )
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", 3_000)
    assert payment.charge_reference == charge


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("event_type", "stripe_status", "expected", "refunded"),
    [
        ("refund.created", "succeeded", "succeeded", 6_000),
        ("refund.created", "pending", "pending", 6_000),
        ("refund.updated", "succeeded", "succeeded", 6_000),
        ("refund.failed", "failed", "failed", 0),
        ("charge.refund.updated", "succeeded", "succeeded", 6_000),
        ("charge.refund.updated", "canceled", "canceled", 0),
    ],
)
def test_refund_events_settle_our_refund_found_by_the_id_we_sent(
    deliver, version, event_type, stripe_status, expected, refunded
) -> None:
    payment = CapturedPaymentFactory(
        gateway_reference="pi_rf", charge_reference="ch_rf", amount=10_000
    )
    ours = refund_create(payment=payment, amount=6_000, reason="duplicate")
    # Old refunds name only the charge (payment_intent null, as in Stripe's 2020 fixture);
    # current ones name the payment intent too.
    intent = None if version == OLD else "pi_rf"
    obj = refund_obj(
        version, "re_x", 6_000, stripe_status, charge="ch_rf", intent=intent, refund_id=ours.pk
    )
    assert deliver(event(version, event_type, obj)).status == "processed"
    refund = Refund.objects.get()  # ours, not a second one
    assert (refund.pk, refund.gateway_reference, refund.status) == (ours.pk, "re_x", expected)
    assert refund.gateway_event_at is not None
    payment.refresh_from_db()
    assert payment.refunded_amount == refunded
    assert payment.status == ("partially_refunded" if expected == "succeeded" else "captured")


@pytest.mark.parametrize("version", VERSIONS)
def test_a_refund_made_at_stripe_is_recorded_once_however_often_it_is_reported(
    deliver, version
) -> None:
    payment = CapturedPaymentFactory(
        gateway_reference="pi_ms", charge_reference="ch_ms", amount=10_000
    )
    obj = refund_obj(version, "re_ms", 2_500, "succeeded", charge="ch_ms", intent="pi_ms")
    for event_type in ("refund.created", "charge.refund.updated", "refund.updated"):
        deliver(event(version, event_type, obj))
    refunds = {
        "object": "list",
        "data": [obj],
        "has_more": False,
        "url": "/v1/charges/ch_ms/refunds",
    }
    if version == OLD:
        deliver(
            event(
                OLD,
                "charge.refunded",
                charge_obj(OLD, "ch_ms", "pi_ms", amount_refunded=2_500, refunds=refunds),
            )
        )
    assert Refund.objects.count() == 1
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", 2_500)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_a_refund_that_fails_after_it_succeeded_is_held_for_a_person(deliver) -> None:
    payment = CapturedPaymentFactory(gateway_reference="pi_sf", amount=10_000)
    obj = refund_obj(CURRENT, "re_sf", 1_000, "succeeded", intent="pi_sf")
    now = int(time.time())
    deliver(event(CURRENT, "refund.created", obj, created=now - 60))
    failed = deliver(event(CURRENT, "refund.failed", {**obj, "status": "failed"}, created=now))
    assert failed.status == "failed"
    assert "after it had succeeded" in failed.last_error
    assert Refund.objects.get().status == "succeeded"
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", 1_000)


# --- Payments: states only forward --------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_a_late_payment_failed_after_succeeded_leaves_the_payment_captured(
    deliver, version
) -> None:
    payment = PaymentFactory(gateway_reference="pi_late", status=Payment.Status.PROCESSING)
    now = int(time.time())
    if version == OLD:
        paid = {"charges": {"object": "list", "data": [{"id": "ch_paid", "status": "succeeded"}]}}
        failed_attempt = {"charges": {"object": "list", "data": [{"id": "ch_declined"}]}}
    else:
        paid, failed_attempt = {"latest_charge": "ch_paid"}, {"latest_charge": "ch_declined"}
    deliver(
        event(
            version,
            "payment_intent.succeeded",
            intent_obj(version, "pi_late", "succeeded", **paid),
            created=now,
        )
    )
    payment.refresh_from_db()
    assert (payment.status, payment.captured_amount) == ("captured", 10_000)
    audits = payment_audit_count(payment)
    # The first attempt failed before the second succeeded; its event arrives last.
    declined = intent_obj(
        version,
        "pi_late",
        "requires_payment_method",
        last_payment_error={
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
            "type": "card_error",
        },
        **failed_attempt,
    )
    late = deliver(event(version, "payment_intent.payment_failed", declined, created=now - 30))
    assert (late.status, late.last_error) == ("processed", "")
    payment.refresh_from_db()
    assert (payment.status, payment.charge_reference) == ("captured", "ch_paid")
    assert payment.gateway_event_at == datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    assert payment_audit_count(payment) == audits


def test_payment_failed_carries_requires_payment_method_and_fails_a_pending_payment(
    deliver,
) -> None:
    payment = PaymentFactory(gateway_reference="pi_pf")
    declined = intent_obj(
        CURRENT,
        "pi_pf",
        "requires_payment_method",
        last_payment_error={"code": "card_declined", "type": "card_error"},
    )
    deliver(event(CURRENT, "payment_intent.payment_failed", declined))
    payment.refresh_from_db()
    assert (payment.status, payment.charge_reference) == ("failed", "")


@pytest.mark.parametrize("order", ["failed first", "succeeded first"])
def test_a_failed_attempt_then_a_successful_one_ends_captured_in_any_delivery_order(
    deliver, order
) -> None:
    """Stripe's PaymentIntent lifecycle: a declined attempt leaves the intent in
    requires_payment_method, and a second attempt on it can succeed. Whatever order the two
    events arrive in, the newer one decides."""
    payment = PaymentFactory(gateway_reference="pi_retry")
    now = int(time.time())
    declined = intent_obj(
        CURRENT,
        "pi_retry",
        "requires_payment_method",
        last_payment_error={"code": "card_declined", "type": "card_error"},
    )
    failed = event(CURRENT, "payment_intent.payment_failed", declined, created=now - 30)
    succeeded = event(
        CURRENT,
        "payment_intent.succeeded",
        intent_obj(CURRENT, "pi_retry", "succeeded", latest_charge="ch_retry"),
        created=now,
    )
    for body in [failed, succeeded] if order == "failed first" else [succeeded, failed]:
        assert deliver(body).status == "processed"
    payment.refresh_from_db()
    assert (payment.status, payment.captured_amount, payment.charge_reference) == (
        "captured",
        10_000,
        "ch_retry",
    )


def test_success_reported_for_a_canceled_payment_is_held_for_a_person(deliver) -> None:
    payment = PaymentFactory(gateway_reference="pi_back", status=Payment.Status.CANCELED)
    audits = payment_audit_count(payment)
    stored = deliver(
        event(CURRENT, "payment_intent.succeeded", intent_obj(CURRENT, "pi_back", "succeeded"))
    )
    assert stored.status == "failed"
    assert "the money was taken" in stored.last_error
    assert Payment.objects.get(pk=payment.pk).status == "canceled"
    assert payment_audit_count(payment) == audits


# --- Disputes -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_a_charge_only_dispute_finds_its_payment_by_the_stored_charge(deliver, version) -> None:
    payment = CapturedPaymentFactory(gateway_reference="pi_cd", charge_reference="ch_cd")
    obj = dispute_obj(version, "dp_cd", "ch_cd", "warning_needs_response")
    assert obj["payment_intent"] is None
    assert deliver(event(version, "charge.dispute.created", obj)).status == "processed"
    chargeback = Chargeback.objects.get()
    assert (chargeback.payment_id, chargeback.status, chargeback.amount) == (
        payment.pk,
        "needs_response",
        10_000,
    )
    assert chargeback.gateway_event_at is not None


def test_a_charge_only_dispute_reads_the_charge_from_stripe(local_stripe, deliver) -> None:
    payment = _stripe_payment()
    charge = _stripe_charge_of(payment)
    with transaction.atomic():  # as a payment recorded before we kept charge ids
        payment.charge_reference = ""
        payment.save()
    # The adapter names the charge too (for payment_authorize to keep from the start).
    assert get_gateway("stripe").fetch(reference=payment.gateway_reference).charge_reference == (
        charge
    )
    obj = dispute_obj(CURRENT, "dp_fetch", charge, "needs_response")
    assert deliver(event(CURRENT, "charge.dispute.created", obj)).status == "processed"
    assert Chargeback.objects.get().payment_id == payment.pk
    payment.refresh_from_db()
    assert payment.charge_reference == charge  # the next event needs no read


def test_an_unknown_charge_fails_the_event_with_a_clear_error(local_stripe, deliver) -> None:
    obj = dispute_obj(CURRENT, "dp_unknown", "ch_nowhere", "needs_response")
    stored = deliver(event(CURRENT, "charge.dispute.created", obj))
    assert stored.status == "failed"
    assert "ch_nowhere" in stored.last_error
    assert not Chargeback.objects.exists()


def test_an_older_dispute_event_changes_neither_status_nor_due_date(deliver) -> None:
    CapturedPaymentFactory(gateway_reference="pi_dd", charge_reference="ch_dd")
    now = int(time.time())
    newer_due, older_due = now + 9 * 86400, now + 3 * 86400
    deliver(
        event(
            CURRENT,
            "charge.dispute.updated",
            dispute_obj(
                CURRENT,
                "dp_dd",
                "ch_dd",
                "under_review",
                amount=8_000,
                evidence_details={"due_by": newer_due, "has_evidence": True},
            ),
            created=now,
        )
    )
    deliver(
        event(
            CURRENT,
            "charge.dispute.created",
            dispute_obj(
                CURRENT,
                "dp_dd",
                "ch_dd",
                "needs_response",
                evidence_details={"due_by": older_due, "has_evidence": False},
            ),
            created=now - 120,
        )
    )
    chargeback = Chargeback.objects.get()
    assert (chargeback.status, chargeback.amount) == ("under_review", 8_000)
    assert chargeback.evidence_due_by == datetime.datetime.fromtimestamp(newer_due, datetime.UTC)
    assert chargeback.gateway_event_at == datetime.datetime.fromtimestamp(now, datetime.UTC)


def test_a_closed_dispute_never_reopens_but_a_loss_can_be_reinstated(deliver) -> None:
    CapturedPaymentFactory(gateway_reference="pi_cl", charge_reference="ch_cl")
    now = int(time.time())
    steps = [
        ("charge.dispute.created", "needs_response", now - 300, "needs_response"),
        ("charge.dispute.closed", "lost", now - 200, "lost"),
        ("charge.dispute.updated", "needs_response", now - 100, "lost"),  # never reopens
        ("charge.dispute.funds_reinstated", "won", now, "won"),
        ("charge.dispute.updated", "under_review", now + 1, "won"),
    ]
    for event_type, status, created, expected in steps:
        obj = dispute_obj(CURRENT, "dp_cl", "ch_cl", status)
        deliver(event(CURRENT, event_type, obj, created=created))
        assert Chargeback.objects.get().status == expected, event_type


# --- Partial refunds, counted once -----------------------------------------------------------


def test_three_partial_refunds_through_the_service_against_stripe(local_stripe) -> None:
    payment = _stripe_payment(amount=10_000)
    expected = [(2_000, "partially_refunded", 2_000), (3_000, "partially_refunded", 5_000)]
    expected.append((5_000, "refunded", 10_000))
    for amount, status, total in expected:
        refund = refund_create(payment=payment, amount=amount, reason="duplicate")
        refund = refund_submit(refund=refund)
        assert refund.status == "succeeded"
        payment.refresh_from_db()
        assert (payment.status, payment.refunded_amount) == (status, total)
    at_stripe = get_gateway("stripe").refunds_for_payment(reference=payment.gateway_reference)
    ours = dict(Refund.objects.values_list("gateway_reference", "pk"))
    assert {r.reference: r.refund_id for r in at_stripe} == ours  # metadata[refund_id]
    assert len(ours) == 3


def test_three_partial_refunds_through_the_api(
    local_stripe, django_capture_on_commit_callbacks
) -> None:
    from django.contrib.auth.models import User

    from tests.api.conftest import client_for, issue

    merchant = MerchantFactory()
    owner = User.objects.create_user("integration", email="integration@example.com")
    raw = issue(owner, ["payments:read", "payments:write"], merchant=merchant)
    payment = gateway_payment(merchant=merchant, amount=10_000)
    steps = [
        (2_000, "partially_refunded", 2_000),
        (3_000, "partially_refunded", 5_000),
        (5_000, "refunded", 10_000),
    ]
    for n, (amount, status, total) in enumerate(steps):
        with django_capture_on_commit_callbacks(execute=True):  # the submit task, eager
            response = client_for(raw, HTTP_IDEMPOTENCY_KEY=f"partial-{n}").post(
                f"/api/v1/payments/{payment.pk}/refunds/",
                {"amount": amount, "reason": "requested_by_customer"},
                format="json",
            )
        assert response.status_code == 201, response.content
        payment.refresh_from_db()
        assert (payment.status, payment.refunded_amount) == (status, total)
    assert list(Refund.objects.values_list("status", flat=True)) == ["succeeded"] * 3


@pytest.mark.parametrize("version", VERSIONS)
def test_three_partial_refunds_through_webhooks(deliver, version) -> None:
    payment = CapturedPaymentFactory(
        gateway_reference="pi_3", charge_reference="ch_3", amount=10_000
    )
    made = []
    steps = [
        (2_000, "partially_refunded", 2_000),
        (3_000, "partially_refunded", 5_000),
        (5_000, "refunded", 10_000),
    ]
    for n, (amount, status, total) in enumerate(steps):
        made.append(refund_obj(version, f"re_3_{n}", amount, "succeeded", charge="ch_3"))
        if version == OLD:  # each charge.refunded embeds every refund so far
            refunds = {"object": "list", "data": list(made), "has_more": False, "url": "/"}
            charge = charge_obj(OLD, "ch_3", "pi_3", amount_refunded=total, refunds=refunds)
            deliver(event(OLD, "charge.refunded", charge))
        else:
            deliver(event(CURRENT, "refund.created", made[-1]))
        payment.refresh_from_db()
        assert (payment.status, payment.refunded_amount) == (status, total)
    assert Refund.objects.filter(payment=payment, status="succeeded").count() == 3
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_refund_webhook_racing_the_submit_finds_our_refund(
    local_stripe, settings, monkeypatch
) -> None:
    """Stripe's webhook for a refund can arrive before its answer to our request: it used to
    create a second refund (and the submit then broke on the unique reference)."""
    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]
    payment = _stripe_payment(amount=10_000)
    refund = refund_create(payment=payment, amount=4_000, reason="duplicate")
    created_at_stripe: queue.Queue[Any] = queue.Queue()
    webhook_done = threading.Event()
    send_refund = StripeGateway.refund

    def refund_with_a_slow_answer(self, **kwargs):
        result = send_refund(self, **kwargs)
        created_at_stripe.put(result)
        webhook_done.wait(timeout=30)  # the answer is on its way while the webhook lands
        return result

    monkeypatch.setattr(StripeGateway, "refund", refund_with_a_slow_answer)

    def submit() -> Refund:
        return refund_submit(refund=refund)

    def webhook() -> int:
        try:
            sent = created_at_stripe.get(timeout=30)
            at_stripe = get_gateway("stripe").client.v1.refunds.retrieve(sent.reference)
            obj = refund_obj(
                CURRENT,
                at_stripe.id,
                at_stripe.amount,
                at_stripe.status,
                charge=at_stripe.charge,
                intent=payment.gateway_reference,
                refund_id=int(at_stripe.metadata.to_dict().get("refund_id", 0)) or None,
            )
            payload = json.dumps(event(CURRENT, "refund.created", obj))
            return sh.post(Client(), payload).status_code
        finally:
            webhook_done.set()

    submitted, status_code = run_at_once(submit, webhook)
    assert isinstance(submitted, Refund), submitted
    assert status_code == 200
    stored = Refund.objects.get()  # one refund, ours
    assert (stored.pk, stored.status, stored.amount) == (refund.pk, "succeeded", 4_000)
    assert stored.gateway_reference.startswith("re_")
    assert WebhookEvent.objects.get().status == "processed"
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", 4_000)


def test_an_expired_dispute_takes_the_outcome_stripe_reports(deliver) -> None:
    payment = CapturedPaymentFactory(gateway_reference="pi_ex", charge_reference="ch_ex")
    with transaction.atomic():  # as chargebacks_daily leaves it once the reply date passed
        Chargeback.objects.create(
            payment=payment,
            gateway="stripe",
            gateway_reference="dp_ex",
            reason="fraudulent",
            amount=10_000,
            currency="EUR",
            status=Chargeback.Status.EXPIRED,
        )
    deliver(event(CURRENT, "charge.dispute.closed", dispute_obj(CURRENT, "dp_ex", "ch_ex", "lost")))
    deliver(
        event(
            CURRENT,
            "charge.dispute.updated",
            dispute_obj(CURRENT, "dp_ex", "ch_ex", "needs_response"),
        )
    )
    assert Chargeback.objects.get().status == "lost"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_events_for_one_refund_processed_at_once_record_it_once(settings) -> None:
    from payments.inbox.store import webhook_event_process

    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]
    payment = CapturedPaymentFactory(
        gateway_reference="pi_two", charge_reference="ch_two", amount=10_000
    )
    obj = refund_obj(CURRENT, "re_two", 3_000, "succeeded", charge="ch_two", intent="pi_two")
    stored = []
    for event_type in ("refund.created", "charge.refund.updated"):
        body = event(CURRENT, event_type, obj)
        with transaction.atomic():
            stored.append(
                WebhookEvent.objects.create(
                    provider="stripe", event_id=body["id"], event_type=event_type, payload=body
                )
            )
    results = run_at_once(*[lambda pk=row.pk: webhook_event_process(event_id=pk) for row in stored])
    assert results == ["processed", "processed"], results
    assert Refund.objects.get().gateway_reference == "re_two"
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", 3_000)
