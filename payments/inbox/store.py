"""The webhook inbox: verify a gateway's notification, store it once, process it after commit.

A verified event is stored (unique per provider and event id) with the evidence to check it
again later (the raw body, the signature as sent, the source IP, the receive time) before it is
acknowledged, and processed by a Celery task started when the row has committed. Processing can
run any number of times: the event row is locked, a finished event is left alone, a run that
comes before the event's next attempt is due does nothing, and each handler applies the
gateway's state only when it moves a row forward.

The row's `next_attempt_at` is what guarantees a retry: it is set on receive (a short grace
for the enqueue after commit), pushed back by the backoff after each failure, and cleared once
the event is finished or its attempts are spent. The beat sweep runs every event that is due,
so a retry message lost with the broker, a killed worker or a database outage only delays it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import logging
from typing import TYPE_CHECKING, Any

from auditlog.models import LogEntry
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.models import Q
from django.utils import timezone

from audits import context
from audits.entries import create_entry, entry_columns, remember_stored_before
from audits.receivers import update_entry

from ..core.records import attributes
from ..exceptions import PaymentsError
from ..models import WebhookEvent
from .batch import events_apply, run_alone
from .handlers import handler_for
from .verify import VerifiedEvent, storable_text

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def webhook_event_requeue(*, event: WebhookEvent, actor: User | None = None) -> WebhookEvent:
    """Process a stored event again (replay), failed or not, with a fresh set of attempts:
    handlers only move rows forward, so replaying an event that already took effect changes
    nothing. The last error stays on the row until an attempt succeeds."""
    from ..tasks import enqueue_webhook_event

    with transaction.atomic(), context.acting(actor):
        event = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        event.status = WebhookEvent.Status.RECEIVED
        event.processed_at = None
        event.attempts = 0
        # The enqueue below runs it now; if that message is lost, the sweep does after the grace.
        event.next_attempt_at = timezone.now() + ENQUEUE_GRACE
        event.save()
        transaction.on_commit(lambda: enqueue_webhook_event(event.pk), robust=True)
        return event


log = logging.getLogger(__name__)


# A received event gets this long for its after-commit enqueue before the sweep takes it.
ENQUEUE_GRACE = datetime.timedelta(seconds=60)


# A run this early for its attempt still counts as due: a Celery retry's countdown and the row's
# next_attempt_at are computed from two clock readings a few milliseconds apart.
DUE_SLACK = datetime.timedelta(seconds=5)


class WebhookProcessingFailed(PaymentsError):
    def __init__(self, message: str, *, retry_at: datetime.datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at  # None once the event's attempts are spent


@dataclasses.dataclass(frozen=True)
class Stored:
    """What the inbox answers: the row's id (None for a redelivery, which stored nothing), the
    gateway's event id and whether the event is new."""

    pk: int | None
    event_id: str
    created: bool


# Everything a verified event carries is stored on its row, under the same names.
VERIFIED_FIELDS = [field.name for field in dataclasses.fields(VerifiedEvent)]


def webhook_event_store(event: VerifiedEvent, *, source_ip: str | None = None) -> Stored:
    """Store a verified event once, with its evidence, in ONE statement: an
    `INSERT ... ON CONFLICT DO NOTHING` on (provider, event_id), which on PostgreSQL also writes
    the row's change-log entry (a data-modifying CTE; on SQLite, which has none, a second
    statement in the same transaction). A redelivery inserts nothing and logs nothing.

    The inbox row is the evidence (raw body, signature, source IP, receive time), so it and its
    change-log entry are written before the acknowledgement; nothing else is: processing runs
    later (see webhook_event_receive)."""
    now = timezone.now()
    row = WebhookEvent(
        **attributes(event, VERIFIED_FIELDS),
        source_ip=source_ip,
        received_at=now,
        # The sweep's safety net if the hand-off to processing never happens (the broker is
        # down, or this process dies before it publishes).
        next_attempt_at=now + ENQUEUE_GRACE,
    )
    connection = connections[WebhookEvent.objects.db]
    quote = connection.ops.quote_name
    fields = [f for f in WebhookEvent._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(f.column or f.attname) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    params = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
    # Table and column names come from the models; every value is a bound parameter.
    table = quote(WebhookEvent._meta.db_table)
    insert = (
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "  # noqa: S608  # nosec B608
        f"ON CONFLICT ({quote('provider')}, {quote('event_id')}) DO NOTHING "
        f"RETURNING {quote('id')}"
    )
    entry = create_entry(row)
    if connection.vendor == "postgresql":
        log_values = entry_columns(entry, connection)
        changes_column = LogEntry._meta.get_field("changes").column
        log_columns = [*log_values, "object_pk", "object_id"]
        selected = []
        for column in log_values:
            # The row's id is known only once inserted: the entry names it, as the receivers'
            # entries do ("id": [null, <id>]).
            selected.append(
                "%s::jsonb || jsonb_build_object('id', jsonb_build_array(NULL, stored.id))"
                if column == changes_column
                else "%s"
            )
        sql = (
            f"WITH stored AS ({insert}), logged AS ("  # noqa: S608  # nosec B608
            f"INSERT INTO {quote(LogEntry._meta.db_table)} "
            f"({', '.join(quote(c) for c in log_columns)}) "
            f"SELECT {', '.join(selected)}, stored.id::text, stored.id FROM stored) "
            "SELECT id FROM stored"
        )
        found = _execute_without_health_check(connection, sql, [*params, *log_values.values()])
        pk = found[0] if found else None
    else:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(insert, params)
            found = cursor.fetchone()
            pk = found[0] if found else None
            if pk is not None:
                row.pk = pk
                create_entry(row).save(using=connection.alias)
    return Stored(pk=pk, event_id=event.event_id, created=pk is not None)


def _execute_without_health_check(
    # Any: django-stubs do not know the wrapper's health-check attributes.
    connection: Any,
    sql: str,
    params: list[Any],
) -> Any:
    """Run the inbox's statement and fetch its one row, without the health check a kept
    connection gets before its first query in a request (CONN_HEALTH_CHECKS: a `SELECT 1`, a
    round trip that would double the request's). The statement can be sent twice
    (`ON CONFLICT DO NOTHING`), so a kept connection that turns out to be dead is replaced and
    the statement sent again, which is what the check was for. If the first one had committed
    before the connection died, the second finds the row: the answer says duplicate, the event
    is not handed off, and its next_attempt_at brings it to the sweep."""
    unchecked = (
        connection.connection is not None
        and connection.health_check_enabled
        and not connection.health_check_done
        and not connection.in_atomic_block
    )
    if unchecked:
        connection.health_check_done = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
        except (OperationalError, InterfaceError):
            if connection.is_usable():
                raise  # the statement failed, not the connection
            connection.close()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def webhook_event_receive(
    event: VerifiedEvent, *, source_ip: str | None = None, hand_off: bool = True
) -> Stored:
    """Store a verified event once (webhook_event_store) and, unless the caller hands it off
    itself (the webhook views do, after the response is sent), queue its processing once
    the row has committed. A redelivery is acknowledged and not processed again."""
    stored = webhook_event_store(event, source_ip=source_ip)
    if stored.created and hand_off:
        transaction.on_commit(lambda: webhook_event_hand_off(stored), robust=True)
    return stored


def webhook_processing_in_process() -> bool:
    """No broker: the processing runs in this process, when it is queued."""
    from ..tasks import tasks_run_in_process

    return tasks_run_in_process()


def webhook_event_hand_off(stored: Stored) -> None:
    """Queue a new event's processing. Never raises: a broker that is down must not turn an
    accepted webhook into an error; the row's next_attempt_at brings the event to the sweep.

    With a broker, the id goes to this process's publisher thread (handoff.py), which sends a
    message per batch of new events; without one, the event is processed here and now."""
    from ..tasks import enqueue_webhook_event
    from .handoff import publish_later

    if stored.pk is None:
        return
    try:
        if webhook_processing_in_process():
            enqueue_webhook_event(stored.pk)
        else:
            publish_later(stored.pk, send=enqueue_webhook_event, batch=BATCH_SIZE)
    except Exception:
        log.exception(
            "webhook event %s: processing not queued, the sweep will run it", stored.event_id
        )


def _is_due(event: WebhookEvent, now: datetime.datetime) -> bool:
    """A failed event runs again only at its next attempt: a second message for the same attempt
    (a Celery retry and the sweep, or the sweep twice while the queue is long) finds the attempt
    already made and its successor scheduled, and does nothing."""
    if event.status != WebhookEvent.Status.FAILED:
        return True
    return event.next_attempt_at is not None and event.next_attempt_at <= now + DUE_SLACK


def webhook_event_process(*, event_id: int) -> str:
    """Process one stored event, under its row lock. Safe to run again: a finished event is
    left as it is, a failed one runs only when its next attempt is due.

    A handler's failure is kept on the row (attempts, last error, next attempt). A failure that
    leaves nothing writable (the database connection is gone) propagates: the task retries it,
    and if that message is lost too, the row's unchanged next_attempt_at brings it back."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        now = timezone.now()
        if event.status in (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED):
            return event.status
        if not _is_due(event, now):
            return event.status
        failure = _attempt(event, now)
    if failure is not None:
        raise WebhookProcessingFailed(event.last_error, retry_at=event.next_attempt_at) from failure
    return event.status


# Events one batch claims and applies in one transaction. Larger batches save commits but hold
# the rows they changed (payments, refunds) locked longer.
BATCH_SIZE = 100


@dataclasses.dataclass(frozen=True)
class Outcome:
    event_id: int
    status: str
    retry_at: datetime.datetime | None  # a failed event's next attempt; None once spent


def webhook_events_process_batch(*, limit: int = BATCH_SIZE) -> list[Outcome]:
    """Apply up to `limit` events that are waiting (received, or failed and due), oldest first,
    in one transaction: one query claims them (`FOR UPDATE SKIP LOCKED`: events another batch
    or a single run holds are left to it), their handlers run together (batch.py: one query
    locks the payments they name, the audit rows are appended per chain at the end) and one
    bad event is recorded as failed without undoing the others; one statement then records
    every attempt on the event rows, one more their change-log entries.

    The guarantees of webhook_event_process hold for each event: its row is locked while it
    runs, a finished event is never claimed (it has no next attempt), a failed one only when
    due, and a connection lost mid-batch rolls the whole batch back, not counted: every claimed
    row is as it was, still due."""
    with transaction.atomic():
        now = timezone.now()
        waiting = Q(status=WebhookEvent.Status.RECEIVED) | Q(next_attempt_at__lte=now + DUE_SLACK)
        claimed = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            # The partial index webhook_next_attempt_idx holds exactly the unfinished events.
            .filter(waiting, next_attempt_at__isnull=False)
            .order_by("pk")[:limit]
        )
        failures = events_apply(claimed)
        befores = [copy.copy(event) for event in claimed]
        for event in claimed:
            _record_attempt(event, failures.get(event.pk), now, handled=event.pk in failures)
        _save_attempts(claimed, befores)
    return [
        Outcome(
            event.pk,
            event.status,
            event.next_attempt_at if event.status == WebhookEvent.Status.FAILED else None,
        )
        for event in claimed
    ]


# What an attempt changes on the event row: saved alone, the payload and raw body (up to
# WEBHOOK_MAX_BYTES each) are not written again.
ATTEMPT_FIELDS = ["status", "attempts", "processed_at", "last_error", "next_attempt_at"]


def _attempt(event: WebhookEvent, now: datetime.datetime) -> Exception | None:
    """One attempt at a locked, due event, inside the caller's transaction: the handler in its
    own savepoint, the outcome on the row (and in its change log). Returns the handler's
    failure, if any."""
    # The row as locked is the change log's before-state: the receiver need not read it again.
    remember_stored_before(event, copy.copy(event))
    failure = run_alone(event)
    _record_attempt(event, failure, now, handled=handler_for(event) is not None)
    event.save(update_fields=ATTEMPT_FIELDS)
    return failure


def _record_attempt(
    event: WebhookEvent, failure: Exception | None, now: datetime.datetime, *, handled: bool
) -> None:
    """An attempt's outcome on the event row (not saved): processed, ignored (no handler), or
    failed with its error and its next attempt (none once the attempts are spent)."""
    from ..tasks import backoff_seconds

    event.attempts += 1
    if failure is None:
        event.status = WebhookEvent.Status.PROCESSED if handled else WebhookEvent.Status.IGNORED
        event.processed_at = timezone.now()
        event.last_error = ""
        event.next_attempt_at = None
        return
    event.status = WebhookEvent.Status.FAILED
    event.last_error = storable_text(f"{type(failure).__name__}: {failure}")[:2000]
    spent = event.attempts >= settings.WEBHOOK_MAX_ATTEMPTS
    event.next_attempt_at = (
        None if spent else now + datetime.timedelta(seconds=backoff_seconds(event.attempts - 1))
    )
    log.log(
        logging.ERROR if spent else logging.WARNING,
        "webhook %s %s failed (attempt %s of %s%s): %s",
        event.provider,
        event.event_id,
        event.attempts,
        settings.WEBHOOK_MAX_ATTEMPTS,
        ", attempts spent: replay it from the console or /payments/webhooks/" if spent else "",
        event.last_error,
    )


def _save_attempts(events: list[WebhookEvent], befores: list[WebhookEvent]) -> None:
    """Write the attempts on the event rows in one UPDATE and their change-log entries (the
    ones a save of each with update_fields=ATTEMPT_FIELDS writes) in one INSERT."""
    if not events:
        return
    connection = connections[WebhookEvent.objects.db]
    quote = connection.ops.quote_name
    fields = [f for f in WebhookEvent._meta.concrete_fields if f.name in ATTEMPT_FIELDS]
    columns = [quote(f.column or f.attname) for f in fields]
    casts = [str(f.db_type(connection)) for f in fields]
    row = "(%s::bigint, " + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    params: list[Any] = []
    for event in events:
        params.append(event.pk)
        params.extend(f.get_db_prep_save(getattr(event, f.attname), connection) for f in fields)
    table = quote(WebhookEvent._meta.db_table)
    # Table and column names come from the model; every value is a bound parameter.
    sql = (
        f"UPDATE {table} AS event SET "  # noqa: S608  # nosec B608
        + ", ".join(f"{column} = v.{column}" for column in columns)
        + f" FROM (VALUES {', '.join([row] * len(events))}) AS v(id, {', '.join(columns)}) "
        "WHERE event.id = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    entries = [
        update_entry(event, before=before, changed_fields=frozenset(ATTEMPT_FIELDS))
        for event, before in zip(events, befores, strict=True)
    ]
    LogEntry.objects.bulk_create([entry for entry in entries if entry is not None])
