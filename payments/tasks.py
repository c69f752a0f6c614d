"""Background work for payments. Tasks take ids, load, call a service."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Task, shared_task
from django.utils import timezone

from .models import WebhookEvent
from .services.disputes import daily_review

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 600  # far below the broker's visibility timeout (one hour)


def backoff_seconds(retries: int) -> int:
    """Wait before retry number `retries` + 1: 10 s doubling, at most 10 minutes."""
    return min(10 * 2**retries, MAX_BACKOFF_SECONDS)


def enqueue_webhook_event(event_id: int) -> None:
    process_webhook_event.delay(event_id)


def tasks_run_in_process() -> bool:
    """No broker (CELERY_BROKER_URL unset): a task runs in the caller's process, at once."""
    return bool(process_webhook_event.app.conf.task_always_eager)


def _transient_errors() -> tuple[type[Exception], ...]:
    """Errors of the machinery, not of the event: the attempt did not happen, so it is made
    again (and is not counted against the event's attempts)."""
    from django.db import DatabaseError, InterfaceError
    from kombu.exceptions import OperationalError as BrokerError

    return (DatabaseError, InterfaceError, BrokerError)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def process_webhook_event(self: Task[[int], str], event_id: int) -> str:
    """Run an event. On a worker, one message applies a batch: the events waiting then,
    oldest first (webhook_events_process_batch), so that a burst costs one transaction per
    batch, not per event; a message whose event an earlier batch applied finds less or nothing
    to do. In-process (eager, the demo) it runs its own event only.

    The event row decides when it runs again (its next_attempt_at); a message per failed event
    at that time is the fast path, the sweep the one that cannot be lost."""
    from .inbox.store import (
        WebhookProcessingFailed,
        webhook_event_process,
        webhook_events_process_batch,
    )

    if self.request.is_eager:
        try:
            return webhook_event_process(event_id=event_id)
        except WebhookProcessingFailed:
            return WebhookEvent.Status.FAILED  # the sweep or a replay runs it again
        except _transient_errors() as exc:
            log.warning("webhook event %s: %s, retrying", event_id, exc)
            return "retry"  # the row is as it was: the sweep runs it when due
    try:
        outcomes = webhook_events_process_batch()
    except _transient_errors() as exc:
        log.warning("webhook event %s: %s, retrying", event_id, exc)
        # If this retry cannot be sent either, the rows' next_attempt_at still bring them back.
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc
    now = timezone.now()
    for outcome in outcomes:
        if outcome.retry_at is not None:
            wait = max((outcome.retry_at - now).total_seconds(), 0.0)
            try:
                process_webhook_event.apply_async((outcome.event_id,), countdown=wait)
            except _transient_errors():
                log.warning("webhook event %s: retry not queued, the sweep will run it", event_id)
    # Its own event may have been applied by another batch, be not due, or lie beyond this
    # batch (a later message takes it): then the summary says so without asking the database.
    mine = next((o.status for o in outcomes if o.event_id == event_id), "elsewhere")
    # With the request id the message carries (config.request_id): from receipt to effect.
    log.info("webhook event %s: %s; batch of %s", event_id, mine, len(outcomes))
    return f"{mine}; batch of {len(outcomes)}"


@shared_task
def webhook_events_sweep(ahead_seconds: int = 0, limit: int = 1000) -> int:
    """Enqueue every event whose next attempt is due, whatever its state: a receive whose
    enqueue never happened, a retry whose message was lost with the broker or a killed worker,
    an attempt cut short by a database outage. Events whose attempts are spent have no next
    attempt and stay failed until replayed. A message sent twice for one attempt costs one
    no-op run (see webhooks._is_due). `ahead_seconds` also takes events due that much later."""
    due_by = timezone.now() + timedelta(seconds=ahead_seconds)
    due = list(
        WebhookEvent.objects.filter(next_attempt_at__lte=due_by)
        .exclude(status__in=[WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED])
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for event_id in due:
        process_webhook_event.delay(event_id)
    if due:
        log.info("enqueued %s due webhook events", len(due))
    return len(due)


@shared_task
def chargebacks_daily() -> dict[str, int]:

    return daily_review()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=8)
def submit_refund(self: Task[[int], str], refund_id: int) -> str:
    from .gateways import GatewayUnavailable
    from .models import Refund
    from .services.refunds import refund_submit

    try:
        return refund_submit(refund=Refund.objects.get(pk=refund_id)).status
    except GatewayUnavailable as exc:
        if self.request.is_eager:
            raise
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc


@shared_task
def approvals_expire() -> int:
    from .core.approvals import approvals_expire_due

    return approvals_expire_due()


@shared_task
def idempotency_records_purge(older_than_hours: int = 24) -> int:
    """Saved API answers are replayed for 24 hours; after that their keys are free again."""
    from .models import IdempotencyRecord

    cutoff = timezone.now() - timedelta(hours=older_than_hours)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


@shared_task
def reconcile_daily(days: int = 2) -> dict[str, str]:
    """Reconcile every configured gateway over the last `days` days (each run overlaps the
    previous one, so a day the task missed is still covered). One summary line per gateway."""
    from .services.reconcile import reconcile_all

    since = timezone.now() - timedelta(days=days)
    summary = {}
    for gateway, report in reconcile_all(since=since).items():
        if isinstance(report, str):
            summary[gateway] = f"skipped: {report}"
            continue
        summary[gateway] = (
            f"checked {report.checked}, fixed {len(report.fixed)}, "
            f"differences {len(report.differences)}, errors {len(report.errors)}"
        )
        log.info("reconcile %s: %s", gateway, summary[gateway])
    return summary


@shared_task
def payment_rollups_refresh(days: int = 2) -> int:
    """The overview's daily roll-ups: today and yesterday every few minutes, the last 35 days
    nightly (see settings.CELERY_BEAT_SCHEDULE). Returns the rows written."""
    from .services.rollups import rollups_refresh_recent

    return sum(result.rows for result in rollups_refresh_recent(days=days))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=8)
def sandbox_deliver_webhook(self: Task[[str], str], event_reference: str) -> str:
    """Send one of the sandbox gateway's events, signed, to SANDBOX_WEBHOOK_URL (our own
    /webhooks/sandbox/), as a real gateway would. When nobody answers there (no server running:
    a shell, a test, a worker without the web process), or no address is set, the same signed
    body goes straight through the webhook view's verification and the inbox in-process.
    Enqueued by name from payments/gateways/sandbox.py, with a countdown ("a moment later";
    ignored when tasks run in-process)."""
    from django.conf import settings

    from .gateways.sandbox import (
        sandbox_event_body,
        sandbox_event_delivered,
        sandbox_post,
        signature_header,
    )
    from .inbox.store import webhook_event_receive
    from .inbox.verify import WebhookNotConfigured, WebhookRejected, verify_sandbox

    body = sandbox_event_body(event_reference)
    if body is None:
        return "unknown"
    header = signature_header(settings.SANDBOX_WEBHOOK_SECRET, body)
    url = settings.SANDBOX_WEBHOOK_URL
    if url:
        try:
            status = sandbox_post(url, body, header)
        except OSError as exc:
            log.info(
                "sandbox webhook %s: %s unreachable (%s), in-process", event_reference, url, exc
            )
        else:
            outcome = f"posted: {status}"
            sandbox_event_delivered(event_reference, outcome)
            if status >= 500 and not self.request.is_eager:
                raise self.retry(countdown=backoff_seconds(self.request.retries))
            if status >= 300:
                log.error("sandbox webhook %s refused by %s: HTTP %s", event_reference, url, status)
            return outcome
    try:
        stored = webhook_event_receive(verify_sandbox(body=body.encode(), signature_header=header))
    except (WebhookRejected, WebhookNotConfigured) as exc:
        outcome = f"refused in-process: {exc}"
    else:
        outcome = f"in-process: {'stored' if stored.created else 'duplicate'} {stored.event_id}"
    sandbox_event_delivered(event_reference, outcome)
    return outcome


@shared_task
def payout_accounts_expire() -> int:
    """Payout accounts whose micro-deposits were not confirmed within the window (hourly)."""
    from .services.payout_accounts import payout_accounts_expire as expire

    expired = expire()
    if expired:
        log.info("expired %s payout account verifications", expired)
    return expired
