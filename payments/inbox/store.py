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

import datetime
import logging
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audits import context

from ..exceptions import PaymentsError
from ..models import WebhookEvent
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


def webhook_event_receive(
    event: VerifiedEvent, *, source_ip: str | None = None
) -> tuple[WebhookEvent, bool]:
    """Store a verified event once, with its evidence; start its processing after commit.
    Returns the row and whether it is new (a redelivery is acknowledged and not processed
    again)."""
    from ..tasks import enqueue_webhook_event

    with transaction.atomic():
        stored, created = WebhookEvent.objects.get_or_create(
            provider=event.provider,
            event_id=event.event_id,
            defaults={
                "event_type": event.event_type,
                "payload": event.payload,
                "raw_body": event.raw_body,
                "signature": event.signature,
                "source_ip": source_ip,
                "event_created_at": event.event_created_at,
                # The sweep's safety net if the enqueue below never happens (the broker is
                # down, or this process dies between commit and enqueue).
                "next_attempt_at": timezone.now() + ENQUEUE_GRACE,
            },
        )
        if created:
            # robust: a broker that is down must not turn an accepted webhook into an error.
            transaction.on_commit(lambda: enqueue_webhook_event(stored.pk), robust=True)
    return stored, created


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
    from ..tasks import backoff_seconds

    failure: Exception | None = None
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        now = timezone.now()
        if event.status in (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED):
            return event.status
        if not _is_due(event, now):
            return event.status
        event.attempts += 1
        handler = handler_for(event)
        if handler is None:
            event.status = WebhookEvent.Status.IGNORED
        else:
            try:
                with transaction.atomic():
                    handler(event)
            except Exception as exc:  # any failure is kept on the row and retried
                if transaction.get_rollback():
                    # Not even the savepoint could be rolled back: the connection is gone, so
                    # nothing of this attempt can be recorded. Not counted; retried as is.
                    raise
                failure = exc
        if failure is None:
            event.status = event.status if handler is None else WebhookEvent.Status.PROCESSED
            event.processed_at = timezone.now()
            event.last_error = ""
            event.next_attempt_at = None
        else:
            event.status = WebhookEvent.Status.FAILED
            event.last_error = storable_text(f"{type(failure).__name__}: {failure}")[:2000]
            spent = event.attempts >= settings.WEBHOOK_MAX_ATTEMPTS
            event.next_attempt_at = (
                None
                if spent
                else now + datetime.timedelta(seconds=backoff_seconds(event.attempts - 1))
            )
            log.log(
                logging.ERROR if spent else logging.WARNING,
                "webhook %s %s failed (attempt %s of %s%s): %s",
                event.provider,
                event.event_id,
                event.attempts,
                settings.WEBHOOK_MAX_ATTEMPTS,
                ", attempts spent: replay it from the console or /payments/webhooks/"
                if spent
                else "",
                event.last_error,
            )
        event.save()
    if failure is not None:
        raise WebhookProcessingFailed(event.last_error, retry_at=event.next_attempt_at) from failure
    return event.status
