"""A worker's batch of webhook events in few statements (issue 14, point 3): the events run
together, a failing one runs again alone, and the statements a batch costs grow with its
events only by what each change must write."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audits import context
from audits.models import PaymentAudit
from audits.verify import verify_database
from payments.inbox.store import webhook_event_store, webhook_events_process_batch
from payments.inbox.verify import VerifiedEvent
from payments.models import Payment, Refund, WebhookEvent
from tests.payments.factories import PaymentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

AMOUNT, REFUND = 10_000, 1_000


def _store(kind: str, obj: dict[str, Any], event_id: str, created: int) -> int:
    body = {"id": event_id, "object": "event", "type": kind, "created": created}
    body["data"] = {"object": obj}
    stored = webhook_event_store(
        VerifiedEvent(
            provider="stripe",
            event_id=event_id,
            event_type=kind,
            payload=body,
            raw_body=json.dumps(body),
            signature="t=0,v1=test",
            event_created_at=None,
        )
    )
    assert stored.pk is not None
    return stored.pk


def _capture(payment: Payment, n: int, *, received: int = AMOUNT) -> int:
    intent = {
        "id": payment.gateway_reference,
        "object": "payment_intent",
        "status": "succeeded",
        "amount": AMOUNT,
        "amount_received": received,
        "currency": "eur",
        "latest_charge": f"ch_batch_{n}",
    }
    return _store("payment_intent.succeeded", intent, f"evt_cap_{n}", 1_700_000_000 + n)


def _refund(payment: Payment, n: int) -> int:
    refund = {
        "id": f"re_batch_{n}",
        "object": "refund",
        "amount": REFUND,
        "charge": f"ch_batch_{n}",
        "payment_intent": payment.gateway_reference,
        "status": "succeeded",
        "metadata": {},
        "currency": "eur",
    }
    return _store("refund.updated", refund, f"evt_ref_{n}", 1_700_000_005 + n)


def _payments(count: int, start: int = 0) -> list[Payment]:
    return [
        PaymentFactory(gateway_reference=f"pi_batch_{n}", amount=AMOUNT, currency="EUR")
        for n in range(start, start + count)
    ]


def _warm() -> None:
    """What a worker has cached after its first batch: content types, the system user."""
    context.system_user_id()
    first = _payments(1, start=900)[0]
    _capture(first, 900)
    _refund(first, 900)
    webhook_events_process_batch()


def _statements(pairs: int, start: int) -> int:
    payments = _payments(pairs, start=start)
    for n, payment in enumerate(payments, start=start):
        _capture(payment, n)
        _refund(payment, n)
    with CaptureQueriesContext(connection) as queries:
        outcomes = webhook_events_process_batch()
    assert [o.status for o in outcomes] == ["processed"] * 2 * pairs
    for payment in payments:
        payment.refresh_from_db()
        assert (payment.status, payment.refunded_amount) == ("partially_refunded", REFUND)
    return len(queries.captured_queries)


def test_a_batch_costs_a_fixed_number_of_statements_plus_what_each_change_writes() -> None:
    _warm()
    two, six = _statements(2, start=0), _statements(6, start=100)
    # Per batch, whatever its size: the claim; the savepoint and its release; the payments
    # locked in one query, the refunds in another; the change-log entries of the audited
    # changes in one INSERT; the chain heads locked; the heads moved on and the audit rows
    # inserted; the event rows' attempts in one UPDATE and their change-log entries in one
    # INSERT; and, the test being in a transaction, the batch's own as a savepoint and its
    # release.
    fixed = 10 + 2
    # Per capture: the payment's UPDATE. Per refund made at the gateway: the refund inserted,
    # the payment's refunded total summed and saved, and its fraud scoring in three (the
    # payment's card; every window with the live rules' stamp; the refund's signal and its
    # evaluation stored in one statement: payments/fraud/statements.py).
    per_pair = 1 + 6
    assert two == fixed + 2 * per_pair
    assert six == fixed + 6 * per_pair


def test_every_change_of_a_batch_is_one_row_of_its_chain_and_the_chains_verify() -> None:
    payments = _payments(5)
    for n, payment in enumerate(payments):
        _capture(payment, n)
        _refund(payment, n)
    webhook_events_process_batch()
    for payment in payments:
        rows = PaymentAudit.objects.filter(object_type="payments.payment", object_id=payment.pk)
        kinds = sorted(row.action_type.rsplit(".", 1)[1] for row in rows)
        assert kinds == ["create", "update", "update"]  # recorded; captured; refunded
    refund_rows = PaymentAudit.objects.filter(object_type="payments.refund")
    assert refund_rows.count() == Refund.objects.count() == 5
    report = verify_database()
    assert report.ok, [str(p) for p in report.problems]


def test_a_failing_event_fails_alone_and_the_others_take_effect_once() -> None:
    first, second, third = _payments(3)
    missing = {"id": "pi_nowhere", "status": "succeeded"}
    ids = [
        _capture(first, 0),
        _store("payment_intent.succeeded", missing, "evt_missing", 1_700_000_001),
        _capture(second, 1),
        _refund(second, 1),
        _capture(third, 2),
    ]
    outcomes = webhook_events_process_batch()
    assert [o.event_id for o in outcomes] == ids
    assert [o.status for o in outcomes] == ["processed", "failed", *["processed"] * 3]
    failed = WebhookEvent.objects.get(pk=ids[1])
    assert "No stripe payment with reference 'pi_nowhere'" in failed.last_error
    assert outcomes[1].retry_at == failed.next_attempt_at is not None
    expected = {first: "captured", second: "partially_refunded", third: "captured"}
    for payment, status in expected.items():
        payment.refresh_from_db()
        assert payment.status == status
        updates = PaymentAudit.objects.filter(
            object_type="payments.payment",
            object_id=payment.pk,
            action_type__endswith=".update",
        )
        assert updates.count() == (2 if payment == second else 1)
    assert verify_database().ok
    # Redelivered by the sweep: nothing is applied twice.
    assert webhook_events_process_batch() == []


def test_a_value_the_database_refuses_ends_as_the_error_a_single_run_gives() -> None:
    """Together, the events leave check constraints to the database; the failing event then
    runs alone with them, so its error names the rule, as it always has."""
    good, bad = _payments(2)
    ids = [_capture(good, 0), _capture(bad, 1, received=AMOUNT + 1)]
    outcomes = webhook_events_process_batch()
    assert [o.status for o in outcomes] == ["processed", "failed"]
    error = WebhookEvent.objects.get(pk=ids[1]).last_error
    assert error.startswith("ValidationError"), error
    bad.refresh_from_db()
    good.refresh_from_db()
    assert (good.status, bad.status) == ("captured", "pending")


def test_two_reports_of_one_refund_in_a_batch_make_one_refund_in_its_last_state() -> None:
    [payment] = _payments(1)
    _capture(payment, 0)
    refund = {
        "id": "re_twice",
        "object": "refund",
        "amount": REFUND,
        "payment_intent": payment.gateway_reference,
        "metadata": {},
        "currency": "eur",
    }
    _store("refund.created", {**refund, "status": "pending"}, "evt_re_1", 1_700_000_010)
    _store("refund.updated", {**refund, "status": "succeeded"}, "evt_re_2", 1_700_000_020)
    outcomes = webhook_events_process_batch()
    assert [o.status for o in outcomes] == ["processed"] * 3
    stored = Refund.objects.get()
    assert (stored.gateway_reference, stored.status) == ("re_twice", "succeeded")
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", REFUND)
    updates = PaymentAudit.objects.filter(object_type="payments.refund", object_id=stored.pk)
    assert sorted(row.action_type.rsplit(".", 1)[1] for row in updates) == ["create", "update"]


def test_when_the_audit_rows_cannot_be_appended_together_each_event_runs_alone(
    monkeypatch,
) -> None:
    from audits import chain

    def refused(rows: list[Any]) -> None:
        raise RuntimeError("appending refused")

    monkeypatch.setattr(chain, "_append_gathered", refused)
    payments = _payments(3)
    for n, payment in enumerate(payments):
        _capture(payment, n)
    assert [o.status for o in webhook_events_process_batch()] == ["processed"] * 3
    for payment in payments:
        payment.refresh_from_db()
        assert payment.status == "captured"
        assert (
            PaymentAudit.objects.filter(
                object_id=payment.pk, action_type__endswith=".update"
            ).count()
            == 1
        )
    assert verify_database().ok


def test_a_handler_that_swallows_a_database_error_runs_again_alone(monkeypatch) -> None:
    """Together, a caught database error leaves the transaction unusable (what the handler
    wrote before it would be lost): the event runs again alone, where its own atomic block
    rolls back to a savepoint as it always did, and what it wrote is kept."""
    from django.db import DatabaseError, transaction

    from payments.inbox.handlers import STRIPE_HANDLERS
    from payments.services.payments import payment_apply_gateway_state

    first, second = _payments(2)

    def careless(event: WebhookEvent) -> None:
        payment_apply_gateway_state(payment=first, status=Payment.Status.CAPTURED)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")
        except DatabaseError:
            pass

    monkeypatch.setitem(STRIPE_HANDLERS, "customer.updated", careless)
    ids = [
        _store("customer.updated", {"id": "cus_1"}, "evt_careless", 1_700_000_000),
        _capture(second, 1),
    ]
    outcomes = webhook_events_process_batch()
    assert [(o.event_id, o.status) for o in outcomes] == [
        (ids[0], "processed"),
        (ids[1], "processed"),
    ]
    for payment in (first, second):
        payment.refresh_from_db()
        assert payment.status == "captured"
