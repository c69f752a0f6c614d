"""The fast webhook path (issue 14, points 2 and 3): the request stores the event and its
change-log entry in one statement and answers; the processing is queued after the response;
a worker applies waiting events in batches, each in its own savepoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from auditlog.diff import model_instance_diff
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.signals import request_finished
from django.db import close_old_connections, connection, connections, transaction
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audits import context
from audits.models import PaymentAudit
from payments.inbox import views
from payments.inbox.store import (
    ENQUEUE_GRACE,
    webhook_event_process,
    webhook_events_process_batch,
)
from payments.models import Payment, Refund, WebhookEvent
from tests.payments import stripe_helpers as sh
from tests.payments.factories import CapturedPaymentFactory, PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _stripe(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]


@pytest.fixture
def with_broker() -> Iterator[None]:
    """As on a deployment with a broker: tasks are sent, not run in-process. Nothing is sent
    here: the tests look at what the request does before the hand-off."""
    from config.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = saved


def _body(event_id: str, reference: str = "pi_fast") -> str:
    return json.dumps(
        sh.event("payment_intent.succeeded", sh.intent(reference, "succeeded"), event_id)
    )


def _post(body: str) -> Any:
    return Client().post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sh.sign(body),
        REMOTE_ADDR="198.51.100.7",
    )


def _close(response: Any) -> None:
    """What the WSGI server does once it has written the response; as Django's test client
    does it, without closing the test's database connection (request_finished would)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def _warm() -> None:
    """What any process has cached after its first webhook: the content type and the system
    user's id."""
    ContentType.objects.get_for_model(WebhookEvent)
    context.system_user_id()


def _entries(event: WebhookEvent) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(WebhookEvent), object_pk=str(event.pk)
        ).order_by("pk")
    )


# --- Ingest: one statement, then the answer -------------------------------------------------


def test_a_new_event_is_stored_with_its_change_log_entry_in_one_statement(
    with_broker, django_assert_num_queries, django_capture_on_commit_callbacks
) -> None:
    _warm()
    body = _body("evt_one_statement")
    with django_capture_on_commit_callbacks() as queued:
        # PostgreSQL: INSERT ... ON CONFLICT DO NOTHING and the LogEntry INSERT in one CTE.
        # SQLite (the embedded default) has no data-modifying CTE: the two INSERTs in one
        # transaction (here a savepoint and its release, the test being in a transaction).
        expected = 1 if connection.vendor == "postgresql" else 4
        with django_assert_num_queries(expected):
            response = _post(body)
    assert response.status_code == 200
    assert response.json() == {
        "received": True,
        "event_id": "evt_one_statement",
        "duplicate": False,
    }
    event = WebhookEvent.objects.get(event_id="evt_one_statement")
    assert (event.status, event.attempts, event.raw_body) == ("received", 0, body)
    assert event.next_attempt_at - event.received_at == ENQUEUE_GRACE  # the sweep's safety net
    assert len(queued) == 1  # the hand-off, queued when the response was closed


def test_the_change_log_entry_is_the_one_the_receivers_would_write() -> None:
    body = _body("evt_entry")
    with context.bind(device_id="dev-7"):
        assert _post(body).status_code == 200
    event = WebhookEvent.objects.get(event_id="evt_entry")
    [entry] = _entries(event)
    assert entry.action == LogEntry.Action.CREATE
    assert entry.changes == json.loads(
        json.dumps(model_instance_diff(None, event, use_json_for_changes=True), default=str)
    )
    assert "raw_body" not in entry.changes and "payload" not in entry.changes
    assert entry.changes["id"] == [None, event.pk]
    assert (entry.object_pk, entry.object_id, entry.object_repr) == (
        str(event.pk),
        event.pk,
        str(event),
    )
    assert entry.actor_id == context.system_user_id()
    assert entry.remote_addr == "198.51.100.7"
    assert entry.additional_data["source"] == "webhook"
    assert entry.cid  # the request id, as on every entry of the request


def test_a_redelivery_is_answered_the_same_and_writes_nothing(
    with_broker, django_assert_num_queries, django_capture_on_commit_callbacks
) -> None:
    _warm()
    body = _body("evt_twice")
    assert _post(body).status_code == 200
    event = WebhookEvent.objects.get(event_id="evt_twice")
    with (
        django_capture_on_commit_callbacks() as queued,
        # The INSERT that conflicts, nothing else (on SQLite, in a savepoint).
        django_assert_num_queries(1 if connection.vendor == "postgresql" else 3),
    ):
        response = _post(body)
    assert response.status_code == 200
    assert response.json() == {"received": True, "event_id": "evt_twice", "duplicate": True}
    assert WebhookEvent.objects.count() == 1
    assert len(_entries(event)) == 1
    assert queued == []  # nothing to process again


def test_the_processing_is_queued_only_once_the_response_is_closed(
    with_broker, django_capture_on_commit_callbacks
) -> None:
    """The WSGI server closes the response after writing it: only then is the broker asked."""
    body = _body("evt_after")
    request = RequestFactory().post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sh.sign(body),
    )
    with django_capture_on_commit_callbacks() as queued:
        response = views.stripe_webhook(request)
        assert response.status_code == 200
        assert queued == []  # answered; nothing sent yet
        _close(response)
        _close(response)  # a second close sends nothing more
    assert len(queued) == 1


def test_without_a_broker_the_event_is_processed_before_the_answer(
    django_capture_on_commit_callbacks,
) -> None:
    """In-process (the demo): there is no later to hand off to, so the event is processed after
    its commit and before the answer, in the order the gateway sent it."""
    payment = PaymentFactory(gateway_reference="pi_demo")
    body = _body("evt_demo", "pi_demo")
    request = RequestFactory().post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sh.sign(body),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = views.stripe_webhook(request)
    assert WebhookEvent.objects.get(event_id="evt_demo").status == "processed"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED
    with django_capture_on_commit_callbacks() as queued:
        _close(response)
    assert queued == []  # already handed off


def test_a_rejected_body_stores_nothing_and_logs_nothing(with_broker) -> None:
    response = Client().post(
        "/webhooks/stripe/",
        data=_body("evt_bad"),
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
    )
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
    assert not LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(WebhookEvent)
    ).exists()


# --- Processing in batches ------------------------------------------------------------------


def _stored(event_id: str, kind: str, obj: dict[str, Any], created: int | None = None) -> int:
    from payments.inbox.store import webhook_event_store
    from payments.inbox.verify import verify_stripe

    body = sh.event(kind, obj, event_id)
    if created is not None:
        body["created"] = created
    raw = json.dumps(body)
    stored = webhook_event_store(verify_stripe(body=raw.encode(), signature_header=sh.sign(raw)))
    assert stored.pk is not None
    return stored.pk


def _refund(reference: str, intent: str, amount: int = 1_000) -> dict[str, Any]:
    return {
        "id": reference,
        "object": "refund",
        "amount": amount,
        "charge": "ch_x",
        "payment_intent": intent,
        "status": "succeeded",
        "metadata": {},
        "currency": "eur",
    }


def test_a_batch_applies_waiting_events_oldest_first_and_a_bad_one_fails_alone() -> None:
    captured = [PaymentFactory(gateway_reference=f"pi_batch_{i}") for i in range(3)]
    refunded = CapturedPaymentFactory(gateway_reference="pi_batch_refunded")
    ids = [
        _stored(
            f"evt_cap_{i}", "payment_intent.succeeded", sh.intent(p.gateway_reference, "succeeded")
        )
        for i, p in enumerate(captured)
    ]
    missing = _stored(
        "evt_missing", "payment_intent.succeeded", sh.intent("pi_nowhere", "succeeded")
    )
    refund = _stored("evt_refund", "refund.updated", _refund("re_batch", "pi_batch_refunded"))
    ignored = _stored("evt_other", "customer.created", {"id": "cus_1"})

    outcomes = webhook_events_process_batch()

    assert [o.event_id for o in outcomes] == [*ids, missing, refund, ignored]  # oldest first
    by_id = {o.event_id: o for o in outcomes}
    assert [by_id[i].status for i in ids] == ["processed"] * 3
    assert by_id[ignored].status == "ignored"
    failed = WebhookEvent.objects.get(pk=missing)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "No stripe payment with reference 'pi_nowhere'" in failed.last_error
    assert by_id[missing].retry_at == failed.next_attempt_at is not None
    # The bad event's savepoint rolled back alone: every other effect is there, audited once.
    assert set(
        Payment.objects.filter(pk__in=[p.pk for p in captured]).values_list("status", flat=True)
    ) == {"captured"}
    refunded.refresh_from_db()
    assert (refunded.status, refunded.refunded_amount) == ("partially_refunded", 1_000)
    assert Refund.objects.get().gateway_reference == "re_batch"
    for payment in captured:
        assert (
            PaymentAudit.objects.filter(
                object_type="payments.payment",
                object_id=str(payment.pk),
                action_type__endswith=".update",
            ).count()
            == 1
        )
    # Each attempt is in the inbox row's change log, as a single run writes it.
    entry = _entries(WebhookEvent.objects.get(pk=ids[0]))[-1]
    assert entry.changes["status"] == ["received", "processed"]
    assert set(entry.changes) <= {
        "status",
        "attempts",
        "processed_at",
        "last_error",
        "next_attempt_at",
    }

    # Nothing waits any more: finished events are never claimed, the failed one not before due.
    assert webhook_events_process_batch() == []
    assert WebhookEvent.objects.get(pk=missing).attempts == 1


def test_a_batch_claims_in_one_query_and_stops_at_its_size(django_assert_max_num_queries) -> None:
    ids = [_stored(f"evt_size_{i}", "customer.created", {"id": f"cus_{i}"}) for i in range(5)]
    with CaptureQueriesContext(connection) as queries:
        outcomes = webhook_events_process_batch(limit=3)
    assert [o.event_id for o in outcomes] == ids[:3]
    claims = [
        q for q in queries.captured_queries if q["sql"].startswith('SELECT "payments_webhookevent"')
    ]
    assert len(claims) == 1  # no event is read again before it is saved
    assert [o.event_id for o in webhook_events_process_batch(limit=3)] == ids[3:]


def test_a_due_failed_event_is_claimed_and_a_finished_one_is_never() -> None:
    PaymentFactory(gateway_reference="pi_late")
    event_id = _stored("evt_late", "payment_intent.succeeded", sh.intent("pi_late", "succeeded"))
    done = _stored("evt_done", "customer.created", {"id": "cus"})
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        event.status, event.attempts = WebhookEvent.Status.FAILED, 1
        event.next_attempt_at = timezone.now() + timezone.timedelta(seconds=30)
        event.save()
    assert [o.event_id for o in webhook_events_process_batch()] == [done]
    assert webhook_events_process_batch() == []  # failed, not due yet
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        event.next_attempt_at = timezone.now()
        event.save()
    [outcome] = webhook_events_process_batch()
    assert (outcome.event_id, outcome.status) == (event_id, "processed")
    assert WebhookEvent.objects.get(pk=event_id).attempts == 2


@contextmanager
def _event_row_held(event_id: int) -> Iterator[None]:
    """Another connection holds the event's row lock, as a batch or a single run would."""
    other = connections.create_connection("default")
    other.set_autocommit(False)
    with other.cursor() as cursor:
        cursor.execute("SELECT id FROM payments_webhookevent WHERE id = %s FOR UPDATE", [event_id])
    try:
        yield
    finally:
        other.rollback()
        other.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_skips_events_another_worker_holds_and_never_applies_one_twice() -> None:
    PaymentFactory(gateway_reference="pi_held")
    PaymentFactory(gateway_reference="pi_free")
    held = _stored("evt_held", "payment_intent.succeeded", sh.intent("pi_held", "succeeded"))
    free = _stored("evt_free", "payment_intent.succeeded", sh.intent("pi_free", "succeeded"))
    with _event_row_held(held):
        # SKIP LOCKED: the batch neither waits for the held event nor takes it.
        assert [o.event_id for o in webhook_events_process_batch()] == [free]
    assert WebhookEvent.objects.get(pk=held).status == "received"
    assert [o.event_id for o in webhook_events_process_batch()] == [held]
    # A single run of an event a batch already applied changes nothing.
    assert webhook_event_process(event_id=held) == "processed"
    assert WebhookEvent.objects.get(pk=held).attempts == 1
    payment = Payment.objects.get(gateway_reference="pi_held")
    assert (
        PaymentAudit.objects.filter(
            object_type="payments.payment",
            object_id=str(payment.pk),
            action_type__endswith=".update",
        ).count()
        == 1
    )


# --- The publisher thread -------------------------------------------------------------------


def test_the_publisher_sends_one_message_per_batch_of_gathered_events(monkeypatch, caplog) -> None:
    from config import request_id
    from payments.inbox import handoff

    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(handoff, "_send", lambda pk: sent.append((pk, request_id.current.get())))
    monkeypatch.setattr(handoff, "_batch", 3)
    for pk in (7, 3, 5, 4, 6, 8, 9):
        handoff._pending.put((pk, f"req-{pk}"))
    assert handoff.publish_pending() == 3
    # Oldest first, a message per batch of 3, sent with its first event's request id.
    assert sent == [(3, "req-3"), (6, "req-6"), (9, "req-9")]
    assert request_id.current.get() == ""
    assert handoff.publish_pending() == 0  # nothing left

    def broker_down(pk: int) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(handoff, "_send", broker_down)
    handoff._pending.put((10, ""))
    assert handoff.publish_pending() == 0  # logged, never raised: the sweep runs it
    assert "the sweep will run them" in caplog.text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_a_broker_the_request_hands_the_event_to_the_publisher_thread(
    with_broker, monkeypatch
) -> None:
    """Through the real view and the real thread; the message goes to a list instead of a
    broker (the worker tests send it to a real Redis)."""
    import threading

    from payments.inbox import handoff, store

    sent: list[int] = []
    arrived = threading.Event()

    def send(pk: int) -> None:
        sent.append(pk)
        arrived.set()

    monkeypatch.setattr(store, "webhook_processing_in_process", lambda: False)
    monkeypatch.setattr("payments.tasks.enqueue_webhook_event", send)
    assert _post(_body("evt_thread")).status_code == 200
    assert arrived.wait(timeout=10)
    assert sent == [WebhookEvent.objects.get(event_id="evt_thread").pk]
    assert handoff._publisher is not None and handoff._publisher.is_alive()
