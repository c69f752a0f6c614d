"""A burst of 2,000 signed Stripe events through a real Celery worker on a real Redis.

A quarter are redeliveries of the same event, and the order is shuffled, so refunds and
disputes often arrive before the capture they follow and a late `payment_failed` arrives after
its `succeeded`. Every event must end processed, every amount must be right, no effect may be
applied twice, and both audit trails must hold exactly one row per change, with intact hash
chains. PostgreSQL only: the worker is another process and must see committed rows.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.db.models import Q
from django.test import Client

from audits.models import PaymentAudit
from payments.models import Chargeback, Payment, Refund, WebhookEvent
from tests.payments import stripe_helpers as sh
from tests.payments.factories import PaymentFactory
from tests.payments.test_worker import RedisServer, Worker, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PAYMENTS = int(os.environ.get("BURST_PAYMENTS", 400))
AMOUNT = 10_000
REFUND = 1_000


def _refund(reference: str, intent: str, charge: str, status: str, created: int) -> dict:
    return {
        "id": reference,
        "object": "refund",
        "amount": REFUND,
        "balance_transaction": None,
        "charge": charge,
        "created": created,
        "currency": "eur",
        "metadata": {},
        "payment_intent": intent,
        "reason": "requested_by_customer",
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def _event(event_type: str, obj: dict, event_id: str, created: int) -> dict:
    body = sh.event(event_type, obj, event_id)
    body["created"] = created
    body["api_version"] = "2024-06-20"
    return body


def _events(payments: list[Payment]) -> list[dict]:
    """1,500 distinct events: a capture per payment, two partial refunds (created, then
    succeeded) on half of them, a dispute on half (every other one naming only the charge),
    and a late, older `payment_failed` on a quarter."""
    events: list[dict] = []
    start = int(time.time()) - 3600
    for i, payment in enumerate(payments):
        ref, charge, t = payment.gateway_reference, payment.charge_reference, start + i
        succeeded = sh.intent(ref, "succeeded", AMOUNT)
        succeeded["latest_charge"] = charge
        events.append(_event("payment_intent.succeeded", succeeded, f"evt_ok_{i}", t + 10))
        if i % 4 == 0:
            failed = sh.intent(ref, "requires_payment_method", AMOUNT)
            failed["last_payment_error"] = {"code": "card_declined", "type": "card_error"}
            events.append(_event("payment_intent.payment_failed", failed, f"evt_late_{i}", t))
        if i % 2 == 0:
            for n in (1, 2):
                refund_id = f"re_burst_{i}_{n}"
                for status, offset, kind in (
                    ("pending", 20, "refund.created"),
                    ("succeeded", 30, "refund.updated"),
                ):
                    events.append(
                        _event(
                            kind,
                            _refund(refund_id, ref, charge, status, t + 20),
                            f"evt_{kind}_{i}_{n}",
                            t + offset + n,
                        )
                    )
        else:
            dispute = sh.dispute(f"dp_burst_{i}", ref, "needs_response", AMOUNT)
            dispute["charge"] = charge
            if i % 4 == 3:
                dispute["payment_intent"] = None  # as in Stripe's own fixture
            events.append(_event("charge.dispute.created", dispute, f"evt_dp_{i}", t + 40))
    return events


def _post(client: Client, body: dict) -> None:
    payload = json.dumps(body)
    response = client.post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sh.sign(payload),
    )
    assert response.status_code == 200, response.content


def _settled() -> bool:
    """Nothing left to do: every event finished, or failed with no attempt to come."""
    return not WebhookEvent.objects.filter(
        Q(status__in=["received", "processing"]) | Q(status="failed", next_attempt_at__isnull=False)
    ).exists()


@pytest.fixture
def broker() -> Any:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def test_a_shuffled_burst_with_duplicates_has_one_effect_per_event(broker, settings) -> None:
    from config.celery import app

    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]
    settings.CELERY_BROKER_URL = broker.url
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app._pool, app.amqp._producer_pool = None, None
    app.conf.update(broker_url=broker.url, task_always_eager=False)

    payments = [
        PaymentFactory(
            gateway_reference=f"pi_burst_{i}",
            charge_reference=f"ch_burst_{i}",
            amount=AMOUNT,
            status=Payment.Status.PENDING,
        )
        for i in range(PAYMENTS)
    ]
    distinct = _events(payments)
    rng = random.Random(9)
    deliveries = distinct + rng.sample(distinct, len(distinct) // 3)  # 2,000 in all
    rng.shuffle(deliveries)
    assert len(deliveries) == len(distinct) * 4 // 3

    worker = Worker(broker.url)
    worker.start()
    try:
        client = Client()
        for body in deliveries:
            _post(client, body)
        try:
            wait_until(_settled, timeout=float(os.environ.get("BURST_TIMEOUT", 600)))
        except AssertionError:
            stuck = WebhookEvent.objects.exclude(status="processed")
            for e in stuck[:30]:
                print(e.event_id, e.status, e.attempts, e.last_error)
            raise
    finally:
        worker.stop()
        app._pool, app.amqp._producer_pool = None, None
        app.conf.update(broker_url=saved[0], task_always_eager=saved[1])

    assert dict(Counter(WebhookEvent.objects.values_list("status", flat=True))) == {
        "processed": len(distinct)
    }
    refunded = {p.pk for i, p in enumerate(payments) if i % 2 == 0}
    for payment in Payment.objects.filter(pk__in=[p.pk for p in payments]):
        if payment.pk in refunded:
            assert (payment.status, payment.captured_amount, payment.refunded_amount) == (
                "partially_refunded",
                AMOUNT,
                2 * REFUND,
            ), payment
        else:
            assert (payment.status, payment.captured_amount, payment.refunded_amount) == (
                "captured",
                AMOUNT,
                0,
            ), payment
    assert Refund.objects.count() == 2 * len(refunded)
    assert set(Refund.objects.values_list("status", flat=True)) == {"succeeded"}
    assert Chargeback.objects.count() == PAYMENTS // 2
    assert set(Chargeback.objects.values_list("status", flat=True)) == {"needs_response"}

    # One audit row per change: no row without a change, no change recorded twice, and
    # both trails agree row for row.
    rows = list(
        PaymentAudit.objects.filter(
            object_type__in=["payments.payment", "payments.refund", "payments.chargeback"]
        ).values_list("object_type", "object_id", "before_state", "after_state")
    )
    assert all(before != after for _, _, before, after in rows)
    keyed = Counter(
        (t, o, json.dumps(b, sort_keys=True), json.dumps(a, sort_keys=True)) for t, o, b, a in rows
    )
    assert max(keyed.values()) == 1
    creates = Counter(t for t, _, before, _ in rows if before is None)
    assert creates["payments.refund"] == 2 * len(refunded)
    assert creates["payments.chargeback"] == PAYMENTS // 2
    captures = Counter(
        o
        for t, o, b, a in rows
        if t == "payments.payment" and b and b["status"] != "captured" and a["status"] == "captured"
    )
    assert len(captures) == PAYMENTS and max(captures.values()) == 1
    log_entries = LogEntry.objects.filter(
        content_type__app_label="payments",
        content_type__model__in=["payment", "refund", "chargeback"],
    ).count()
    assert log_entries == len(rows)
    call_command("verify_audit_chain")
