"""No retry is ever lost: the event row holds its next attempt, the sweep runs whatever is due,
an early or duplicate run does nothing, and an event that has spent its attempts waits on the
console and the operations screen for a person to replay it.

The real worker, broker and database faults are in test_worker.py; here the same functions run
in-process."""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import threading
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection, connections, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from payments.inbox.store import (
    DUE_SLACK,
    ENQUEUE_GRACE,
    WebhookProcessingFailed,
    webhook_event_process,
    webhook_event_requeue,
)
from payments.models import Payment, WebhookEvent
from payments.tasks import webhook_events_sweep
from tests.payments import stripe_helpers as sh
from tests.payments.factories import PaymentFactory
from tests.payments.helpers import payment_lock_waiter_pid, payment_row_held

pytestmark = pytest.mark.django_db

SECOND = datetime.timedelta(seconds=1)


@pytest.fixture(autouse=True)
def _stripe(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]
    settings.WEBHOOK_MAX_ATTEMPTS = 3


def _receive(reference: str, event_id: str, *, execute: bool, capture: Any) -> WebhookEvent:
    body = json.dumps(
        sh.event("payment_intent.succeeded", sh.intent(reference, "succeeded"), event_id)
    )
    with capture(execute=execute):
        response = Client().post(
            "/webhooks/stripe/",
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=sh.sign(body),
        )
    assert response.status_code == 200
    return WebhookEvent.objects.get(event_id=event_id)


def _make_due(event: WebhookEvent, when: datetime.datetime | None = None) -> None:
    """Time passes: the event's next attempt is now (or `when`)."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        event.next_attempt_at = when or timezone.now() - SECOND
        event.save()


def _create(status: str, next_attempt_at: datetime.datetime | None, **extra: Any) -> WebhookEvent:
    with transaction.atomic():
        return WebhookEvent.objects.create(
            provider="stripe",
            event_id=f"evt_{status}_{WebhookEvent.objects.count()}",
            event_type="customer.created",  # no handler: a run marks it ignored
            payload={"data": {"object": {}}},
            status=status,
            next_attempt_at=next_attempt_at,
            **extra,
        )


def _no_capture(execute: bool) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()  # the enqueue after commit never happens


def _process(event: WebhookEvent) -> WebhookEvent:
    with contextlib.suppress(WebhookProcessingFailed):  # kept on the row
        webhook_event_process(event_id=event.pk)
    event.refresh_from_db()
    return event


def test_a_received_event_is_due_after_a_short_grace(django_capture_on_commit_callbacks) -> None:
    # The enqueue after commit never happens (as when the broker is down): the row says when
    # the sweep takes over.
    event = _receive(
        "pi_grace", "evt_grace", execute=False, capture=django_capture_on_commit_callbacks
    )
    assert (event.status, event.attempts) == ("received", 0)
    assert event.next_attempt_at - event.received_at == pytest.approx(ENQUEUE_GRACE, abs=SECOND)
    assert webhook_events_sweep() == 0  # not due yet
    assert webhook_events_sweep(ahead_seconds=61) == 1


def test_each_failure_schedules_the_next_attempt_until_the_attempts_are_spent(
    django_capture_on_commit_callbacks, caplog
) -> None:
    event = _receive(
        "pi_missing", "evt_fail", execute=True, capture=django_capture_on_commit_callbacks
    )
    waits = []
    for attempt in (1, 2, 3):
        assert (event.status, event.attempts) == ("failed", attempt)
        assert "No stripe payment with reference 'pi_missing'" in event.last_error
        if attempt < 3:
            waits.append(round((event.next_attempt_at - timezone.now()).total_seconds()))
            _make_due(event)
            event = _process(event)
    assert waits == [10, 20]
    # Spent: no next attempt, the error kept, an error in the log naming where to replay it.
    assert event.next_attempt_at is None
    assert "attempts spent" in caplog.text
    assert webhook_events_sweep(ahead_seconds=86_400) == 0
    assert _process(event).attempts == 3


def test_a_run_before_the_attempt_is_due_does_nothing(django_capture_on_commit_callbacks) -> None:
    event = _receive(
        "pi_early", "evt_early", execute=True, capture=django_capture_on_commit_callbacks
    )
    PaymentFactory(gateway_reference="pi_early")
    # A second message for the attempt just made (a Celery retry and the sweep both sent one).
    assert _process(event).attempts == 1
    # Within the slack of the scheduled time, it runs.
    _make_due(event, timezone.now() + DUE_SLACK - SECOND)
    event = _process(event)
    assert (event.status, event.attempts, event.next_attempt_at) == ("processed", 2, None)
    assert Payment.objects.get(gateway_reference="pi_early").status == Payment.Status.CAPTURED


def test_finished_events_have_no_next_attempt_and_are_left_alone(
    django_capture_on_commit_callbacks,
) -> None:
    PaymentFactory(gateway_reference="pi_done")
    done = _receive("pi_done", "evt_done", execute=True, capture=django_capture_on_commit_callbacks)
    assert (done.status, done.next_attempt_at) == ("processed", None)
    ignored = _create("received", timezone.now())
    ignored = _process(ignored)
    assert (ignored.status, ignored.next_attempt_at) == ("ignored", None)
    for event in (done, ignored):
        assert _process(event).attempts == 1


def test_the_sweep_runs_every_due_event_whatever_its_state() -> None:
    past, future = timezone.now() - SECOND, timezone.now() + datetime.timedelta(minutes=5)
    due = [
        _create("received", past),  # its enqueue never happened
        _create("processing", past),  # its worker died
        _create("failed", past, attempts=1),  # its retry message was lost
    ]
    not_due = [
        _create("failed", future, attempts=1),  # its retry is still to come
        _create("failed", None, attempts=3),  # attempts spent: a person decides
        _create("processed", None, attempts=1),
    ]
    before = {e.pk: (e.status, e.attempts) for e in not_due}
    assert webhook_events_sweep() == 3  # in-process here: each runs at once
    for event in due:
        event.refresh_from_db()
        assert (event.status, event.next_attempt_at) == ("ignored", None)
    assert {
        e.pk: (e.status, e.attempts) for e in WebhookEvent.objects.filter(pk__in=before)
    } == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_mid_attempt_is_not_counted_and_the_row_still_brings_it_back() -> None:
    """A real fault: the backend running the attempt is terminated (what a PostgreSQL restart
    does to it) while it waits for the payment's row lock."""
    payment = PaymentFactory(gateway_reference="pi_cut")
    event = _create("received", timezone.now() - SECOND)
    with transaction.atomic():
        event.event_type = "payment_intent.succeeded"
        event.payload = sh.event("payment_intent.succeeded", sh.intent("pi_cut", "succeeded"))
        event.save()
    scheduled = WebhookEvent.objects.get(pk=event.pk).next_attempt_at
    outcome: list[BaseException | str] = []

    def attempt() -> None:
        try:
            outcome.append(webhook_event_process(event_id=event.pk))
        except BaseException as exc:  # collected for the assertion below
            outcome.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=attempt)
    with payment_row_held(payment.pk):
        thread.start()
        pid = _wait_for_lock_waiter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], DatabaseError), outcome
    event.refresh_from_db()
    # Nothing of the cut attempt was written: not counted, still due, so the sweep runs it.
    assert (event.status, event.attempts, event.next_attempt_at) == ("received", 0, scheduled)
    assert webhook_events_sweep() == 1
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 1)
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.CAPTURED


def _wait_for_lock_waiter() -> int:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pid = payment_lock_waiter_pid()
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise AssertionError("the attempt never reached the payment's lock")


# --- Replay: the console and the operations screen ------------------------------------------


@pytest.fixture
def spent(django_capture_on_commit_callbacks) -> WebhookEvent:
    event = _receive(
        "pi_spent", "evt_spent", execute=True, capture=django_capture_on_commit_callbacks
    )
    for _ in range(2):
        _make_due(event)
        event = _process(event)
    assert (event.status, event.attempts, event.next_attempt_at) == ("failed", 3, None)
    return event


def _entries(event: WebhookEvent) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(WebhookEvent), object_pk=str(event.pk)
        ).order_by("pk")
    )


def test_replay_gives_a_spent_event_a_fresh_set_of_attempts_audited_with_the_actor(
    spent, ops, django_capture_on_commit_callbacks
) -> None:
    PaymentFactory(gateway_reference="pi_spent")
    with django_capture_on_commit_callbacks(execute=True):
        webhook_event_requeue(event=spent, actor=ops)
    spent.refresh_from_db()
    assert (spent.status, spent.attempts, spent.next_attempt_at, spent.last_error) == (
        "processed",
        1,
        None,
        "",
    )
    replay = [e for e in _entries(spent) if e.actor_id == ops.pk]
    assert len(replay) == 1 and replay[0].changes["attempts"] == [3, 0]


def test_the_screen_shows_spent_events_with_their_error_and_evidence(client, ops, spent) -> None:
    _receive("pi_x", "evt_waiting", execute=False, capture=_no_capture)
    client.force_login(ops)
    page = client.get(reverse("payments:webhook-list")).content.decode()
    assert "evt_spent" in page and "evt_waiting" not in page  # by default: attempts spent
    assert "No stripe payment with reference &#x27;pi_spent&#x27;" in page
    assert "3 of 3" in page and "attempts spent" in page
    assert "signature re-verified: yes" in page
    assert 'href="/payments/webhooks/"' in page  # in the navigation
    scheduled = client.get(reverse("payments:webhook-list"), {"show": "scheduled"}).content.decode()
    assert "evt_waiting" in scheduled and "evt_spent" not in scheduled
    everything = client.get(reverse("payments:webhook-list"), {"show": "all"}).content.decode()
    assert "evt_waiting" in everything and "evt_spent" in everything


def test_the_screen_costs_the_same_queries_with_few_or_many_events(client, ops, spent) -> None:
    from django.test.utils import CaptureQueriesContext

    client.force_login(ops)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("payments:webhook-list"), {"show": "all"}).status_code == 200
        return len(queries)

    few = count()
    for n in range(20):
        _create("failed", None, attempts=3, last_error=f"boom {n}")
    # session, user, permissions (user, groups), one page of events
    assert count() == few <= 6


def test_the_screen_needs_the_view_permission(client, analyst) -> None:
    client.force_login(analyst)
    assert client.get(reverse("payments:webhook-list")).status_code == 403


def _csrf(client: Client) -> str:
    page = client.get(reverse("payments:webhook-list")).content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "the page has a replay form"
    return match.group(1)


def test_replay_from_the_screen_is_a_post_with_csrf_by_someone_who_may_change_events(
    ops, auditor, spent, django_capture_on_commit_callbacks
) -> None:
    url = reverse("payments:webhook-replay", args=[spent.pk])
    before = (spent.status, spent.attempts, len(_entries(spent)))

    def unchanged() -> bool:
        spent.refresh_from_db()
        return (spent.status, spent.attempts, len(_entries(spent))) == before

    # An auditor sees the screen but not the button, and a post with a valid token is refused.
    auditors = Client(enforce_csrf_checks=True)
    auditors.force_login(auditor)
    page = auditors.get(reverse("payments:webhook-list")).content.decode()
    assert "evt_spent" in page and "Replay event" not in page
    auditors.cookies["csrftoken"] = "k" * 32
    refused = auditors.post(url, {"csrfmiddlewaretoken": "k" * 32})
    assert refused.status_code == 403 and b"CSRF" not in refused.content  # the permission
    assert unchanged()

    operations = Client(enforce_csrf_checks=True)
    operations.force_login(ops)
    assert operations.get(url).status_code == 405
    forged = operations.post(url)  # no CSRF token
    assert forged.status_code == 403 and b"CSRF" in forged.content
    assert unchanged()

    PaymentFactory(gateway_reference="pi_spent")
    with django_capture_on_commit_callbacks(execute=True):
        response = operations.post(
            url, {"csrfmiddlewaretoken": _csrf(operations), "show": "spent"}, follow=True
        )
    assert response.redirect_chain[-1][0] == "/payments/webhooks/?show=spent"
    assert (
        "Stripe event evt_spent (payment_intent.succeeded) is queued for processing again, "
        "with a fresh set of 3 attempts." in response.content.decode()
    )
    spent.refresh_from_db()
    assert (spent.status, spent.attempts) == ("processed", 1)
    assert Payment.objects.get(gateway_reference="pi_spent").status == Payment.Status.CAPTURED
    assert any(e.actor_id == ops.pk for e in _entries(spent))


def test_the_console_filters_spent_events_shows_the_evidence_and_replays(
    admin_client, spent, django_capture_on_commit_callbacks
) -> None:
    _receive("pi_y", "evt_other", execute=False, capture=_no_capture)
    changelist = reverse("admin:payments_webhookevent_changelist")
    page = admin_client.get(changelist, {"attempts": "spent"}).content.decode()
    assert "evt_spent" in page and "evt_other" not in page
    assert "Attempts spent" in page
    detail = admin_client.get(
        reverse("admin:payments_webhookevent_change", args=[spent.pk])
    ).content.decode()
    assert "yes, against the current secrets" in detail
    assert "No stripe payment with reference" in detail
    PaymentFactory(gateway_reference="pi_spent")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(changelist, {"action": "replay", "_selected_action": [spent.pk]})
    spent.refresh_from_db()
    assert (spent.status, spent.attempts, spent.next_attempt_at) == ("processed", 1, None)
