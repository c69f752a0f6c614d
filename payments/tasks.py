"""Background work for payments. Tasks take ids, load, call a service."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from .models import WebhookEvent

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 600  # far below the broker's visibility timeout (one hour)


def backoff_seconds(retries: int) -> int:
    return min(10 * 2**retries, MAX_BACKOFF_SECONDS)


def enqueue_webhook_event(event_id: int) -> None:
    process_webhook_event.delay(event_id)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=max(settings.WEBHOOK_MAX_ATTEMPTS - 1, 0),
)
def process_webhook_event(self, event_id: int) -> str:  # type: ignore[no-untyped-def]
    from .webhooks import WebhookProcessingFailed, webhook_event_process

    try:
        return webhook_event_process(event_id=event_id)
    except WebhookProcessingFailed as exc:
        if self.request.is_eager:
            return WebhookEvent.Status.FAILED  # in-process mode: replay from the console
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc


@shared_task
def webhook_events_sweep(older_than_seconds: int = 120) -> int:
    """Enqueue stored events whose processing never started (the broker was down, or the
    process died between commit and enqueue). Processing is idempotent, so an event that is
    merely still queued costs one no-op run."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = list(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:1000]
    )
    for event_id in stale:
        process_webhook_event.delay(event_id)
    if stale:
        log.info("re-enqueued %s webhook events", len(stale))
    return len(stale)


@shared_task
def chargebacks_daily() -> dict[str, int]:
    from . import chargebacks

    return chargebacks.daily_review()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=8)
def submit_refund(self, refund_id: int) -> str:  # type: ignore[no-untyped-def]
    from .gateways import GatewayUnavailable
    from .models import Refund
    from .services import refund_submit

    try:
        return refund_submit(refund=Refund.objects.get(pk=refund_id)).status
    except GatewayUnavailable as exc:
        if self.request.is_eager:
            raise
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc


@shared_task
def approvals_expire() -> int:
    from .approvals import approvals_expire_due

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
    from .reconcile import reconcile_all

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
