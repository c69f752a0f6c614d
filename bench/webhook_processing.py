"""Audited webhook processing by one Celery worker (one process) on PostgreSQL and Redis:
events per second, payment captures and refunds, each change in both audit trails.

The events are stored as the webhook views store them (webhook_event_store), then handed off as
the views do after each response (payments/inbox/handoff.py: the publisher thread sends a
message per batch of new events); the worker applies them in batches
(payments.inbox.store.webhook_events_process_batch). Measured from the first hand-off to the
moment every event is applied, and to the moment the queue is empty.

    make bench     # or: .venv/bin/python bench/webhook_processing.py --payments 2000
    BENCH_REDIS_URL=redis://127.0.0.1:6379/15 (default) names the broker; its queue is emptied.

Needs DATABASE_URL on PostgreSQL (the worker is another process and must see the rows); on
SQLite it says so and stops.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
BROKER = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ["CELERY_BROKER_URL"] = BROKER  # this process publishes; it never runs a task

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from payments.inbox.handoff import publish_later  # noqa: E402
from payments.inbox.store import BATCH_SIZE, webhook_event_store  # noqa: E402
from payments.inbox.verify import VerifiedEvent  # noqa: E402
from payments.models import Merchant, Payment, Refund, WebhookEvent  # noqa: E402
from payments.services.merchants import merchant_create  # noqa: E402
from payments.services.payments import payment_record  # noqa: E402
from payments.tasks import enqueue_webhook_event, process_webhook_event  # noqa: E402

AMOUNT, REFUND = 10_000, 1_000


def _event(kind: str, obj: dict, event_id: str, created: int) -> VerifiedEvent:
    body = {"id": event_id, "object": "event", "type": kind, "created": created}
    body["data"] = {"object": obj}
    raw = json.dumps(body)
    return VerifiedEvent(
        provider="stripe",
        event_id=event_id,
        event_type=kind,
        payload=body,
        raw_body=raw,
        signature="t=0,v1=bench",
        event_created_at=None,
    )


def _events(payments: list[Payment], start: int) -> list[VerifiedEvent]:
    """Per payment: its capture, then a partial refund reported succeeded."""
    events = []
    for i, payment in enumerate(payments):
        intent = {
            "id": payment.gateway_reference,
            "object": "payment_intent",
            "status": "succeeded",
            "amount": AMOUNT,
            "amount_received": AMOUNT,
            "currency": "eur",
            "latest_charge": f"ch_bench_{i}",
        }
        events.append(_event("payment_intent.succeeded", intent, f"evt_cap_{i}", start + i))
        refund = {
            "id": f"re_bench_{i}",
            "object": "refund",
            "amount": REFUND,
            "charge": f"ch_bench_{i}",
            "payment_intent": payment.gateway_reference,
            "status": "succeeded",
            "metadata": {},
            "currency": "eur",
        }
        events.append(_event("refund.updated", refund, f"evt_ref_{i}", start + i + 5))
    return events


def _worker(database: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": BROKER,
        "CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
    }
    if not os.environ.get("BENCH_DEBUG"):
        # Production-like: no query log kept per statement.
        env.update(
            DEBUG="0",
            SECRET_KEY=base64.b64encode(os.urandom(32)).decode(),
            AUDIT_CHECKPOINT_SIGNING_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            FIELD_ENCRYPTION_KEYS=os.environ.get(
                "FIELD_ENCRYPTION_KEYS", "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE="
            ),
        )
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "warning",
         "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _pending() -> int:
    return WebhookEvent.objects.exclude(status__in=["processed", "ignored"]).count()


def _round_trips_per_second(count: int = 1000) -> float:
    """What one statement costs on this machine now: the floor under any statement count."""
    with connection.cursor() as cursor:
        started = time.perf_counter()
        for _ in range(count):
            cursor.execute("SELECT 1")
            cursor.fetchone()
    return count / (time.perf_counter() - started)


def _wait(condition, timeout: float) -> float:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.perf_counter()
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=300, help="events: twice as many")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("webhook processing bench: needs PostgreSQL (set DATABASE_URL); skipped")
        return
    queue = redis.Redis.from_url(BROKER)
    queue.delete("celery")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    database = f"postgres://{db['USER']}@{host}/{db['NAME']}"
    worker = None
    try:
        merchant = merchant_create(
            legal_name="Bench Ltd", country="GB", contact_email="bench@example.com"
        )
        merchant.status = Merchant.Status.ACTIVE  # bench data: no KYC case to approve
        with transaction.atomic():
            merchant.save()
        print(f"Creating {args.payments} payments on {connection.vendor}...")
        payments = [
            payment_record(
                merchant=merchant,
                gateway="stripe",
                amount=AMOUNT,
                currency="EUR",
                gateway_reference=f"pi_bench_{n}",
            )
            for n in range(args.payments)
        ]
        worker = _worker(database)
        # Warm up: the worker is up and has applied one event before the clock starts.
        warm = webhook_event_store(_event("customer.created", {"id": "cus"}, "evt_warm", 1))
        process_webhook_event.delay(warm.pk)
        _wait(lambda: _pending() == 0, timeout=120)

        floor_before = _round_trips_per_second()
        events = _events(payments, int(time.time()) - 3600)
        print(f"Storing {len(events)} events (captures and refunds) as the webhook views do...")
        stored = [webhook_event_store(event) for event in events]
        started = time.perf_counter()
        for row in stored:
            publish_later(row.pk, send=enqueue_webhook_event, batch=BATCH_SIZE)
        published = time.perf_counter()
        applied = _wait(lambda: _pending() == 0, timeout=args.timeout)
        drained = _wait(lambda: queue.llen("celery") == 0, timeout=args.timeout)
        # The last message taken may still be running: give it a moment, it finds nothing.
        ok = Payment.objects.filter(status="partially_refunded", refunded_amount=REFUND).count()
        refunds = Refund.objects.filter(status="succeeded").count()
        print(
            f"\nOne worker, {len(events)} events ({args.payments} captures, "
            f"{args.payments} refunds), PostgreSQL + Redis:"
        )
        print(f"  handed off {len(events)} events in {published - started:.2f}s")
        print(
            f"  every event applied after {applied - started:.2f}s: "
            f"{len(events) / (applied - started):.0f} events/s"
        )
        print(f"  broker queue empty after {drained - started:.2f}s")
        print(f"  payments captured and refunded: {ok} of {args.payments}; refunds: {refunds}")
        floor = (floor_before + _round_trips_per_second()) / 2
        per_event = floor / (len(events) / (applied - started))
        print(f"  floor, same run: {floor:.0f} round trips/s (SELECT 1 here, before and after)")
        print(f"  the time of {per_event:.1f} round trips per event applied")
        if ok != args.payments or refunds != args.payments:
            raise SystemExit("not every event took effect")
        from measuring import Figure, report  # make bench's summary

        rate = len(events) / (applied - started)
        report(
            "webhook_processing",
            [Figure("audited processing, one worker", rate, "events/s", target=">= 400")],
            details={"events": len(events), "queue_empty_s": drained - started},
        )
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        queue.delete("celery")
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
