"""What a Prometheus scrape of /metrics costs at volume: N webhook events and N/10 open KYC
cases of history, around a fixed live state (1,000 events waiting, 100 failed for good, 500
cases overdue, 200 approvals waiting), beside /healthz measured in the same run (the floor: the
same middleware, no work). The gauges are one SELECT of indexed scalar subqueries: its time
follows the live state (the rows it counts), and should stay flat as the history grows.
On a throwaway test database (PostgreSQL when DATABASE_URL points at one).

    make bench BENCH_ARGS=--rows=1000000      # or: .venv/bin/python bench/metrics_scrape.py
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import QuerySet  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402
from measuring import measure  # noqa: E402

from kyc.models import KycCase  # noqa: E402
from payments.models import ApprovalRequest, Merchant, WebhookEvent  # noqa: E402
from payments.services.merchants import merchant_create  # noqa: E402

BATCH = 20_000
WAITING, SPENT, OVERDUE, APPROVALS = 1_000, 100, 500, 200


def _status(n: int, rows: int) -> str:
    if n >= rows - WAITING:
        return "received"
    return "failed" if n < SPENT else "processed"


def fill(rows: int) -> None:
    now = timezone.now()
    # Test data straight into the tables: the audited managers refuse bulk writes.
    for start in range(0, rows, BATCH):
        QuerySet(WebhookEvent).bulk_create(
            [
                WebhookEvent(
                    provider="stripe",
                    event_id=f"evt_bench_{n}",
                    event_type="payment_intent.succeeded",
                    payload={"data": {"object": {}}},
                    # The newest events wait, as they do: processing follows receipt.
                    status=_status(n, rows),
                    attempts=8 if n < SPENT else 1,
                    next_attempt_at=now if n >= rows - WAITING else None,
                )
                for n in range(start, min(start + BATCH, rows))
            ]
        )
        print(f"  inserted {min(start + BATCH, rows):,} of {rows:,} webhook events")
    merchant = merchant_create(
        legal_name="Bench Ltd", country="GB", contact_email="bench@example.com"
    )
    cases = rows // 10
    for start in range(0, cases, BATCH):
        QuerySet(KycCase).bulk_create(
            [
                KycCase(
                    reference=f"B{n:015d}",
                    merchant=merchant,
                    kind="kyb",
                    status=("submitted", "in_review")[n % 2],
                    due_at=now + datetime.timedelta(hours=-5 if n < OVERDUE else 48),
                )
                for n in range(start, min(start + BATCH, cases))
            ]
        )
        print(f"  inserted {min(start + BATCH, cases):,} of {cases:,} KYC cases")
    requester = User.objects.create_user("bench-requester", password="x" * 16)
    QuerySet(ApprovalRequest).bulk_create(
        [
            ApprovalRequest(
                action="refund",
                target_type="payments.refund",
                target_id=str(n),
                requested_by=requester,
                expires_at=now + datetime.timedelta(hours=48),
            )
            for n in range(APPROVALS)
        ]
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (WebhookEvent, KycCase, ApprovalRequest, Merchant):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(f"Filling {args.rows:,} webhook events on {connection.vendor}...")
        fill(args.rows)
        settings.METRICS_TOKEN = "bench"  # noqa: S105
        client = Client(HTTP_AUTHORIZATION="Bearer bench")
        started = time.perf_counter()
        floor_ms, floor_queries = measure(client, "/healthz", repeat=21)
        metrics_ms, metrics_queries = measure(client, "/metrics", repeat=21)
        elapsed = time.perf_counter() - started
        print(f"\n{args.rows:,} webhook events, {args.rows // 10:,} KYC cases (median of 21):")
        print(f"  {'/healthz (the floor)':<40} {floor_ms:8.2f} ms  {floor_queries:3d} queries")
        print(f"  {'/metrics':<40} {metrics_ms:8.2f} ms  {metrics_queries:3d} queries")
        print(f"  {'ratio':<40} {metrics_ms / floor_ms:8.1f}x   ({elapsed:.1f} s measuring)")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
