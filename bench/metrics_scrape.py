"""What a Prometheus scrape of /metrics costs at volume: N webhook events and N/10 open KYC
cases of history, around a fixed live state (1,000 events waiting, 100 failed for good, 500
cases overdue, 200 approvals waiting), beside /healthz measured in the same run (the floor: the
same middleware, no work). The gauges are one SELECT of indexed scalar subqueries: its time
follows the live state (the rows it counts), and should stay flat as the history grows.
On a throwaway test database (PostgreSQL when DATABASE_URL points at one).

    make bench BENCH_ARGS=--rows=1000000      # or: .venv/bin/python bench/metrics_scrape.py
"""

from __future__ import annotations

import datetime
import time

import measuring

measuring.setup_django()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db.models import QuerySet  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402
from measuring import Figure, throwaway_database, time_get  # noqa: E402

from kyc.models import KycCase  # noqa: E402
from payments.models import ApprovalRequest, Merchant, WebhookEvent  # noqa: E402

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
        measuring.print_inserted(start + BATCH, rows, "webhook events")
    merchant = measuring.bench_merchant(active=False)
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
        measuring.print_inserted(start + BATCH, cases, "KYC cases")
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
    measuring.analyze(
        *(m._meta.db_table for m in (WebhookEvent, KycCase, ApprovalRequest, Merchant))
    )


def main() -> None:
    rows = measuring.rows_option()
    with throwaway_database():
        print(f"Filling {rows:,} webhook events...")
        fill(rows)
        settings.METRICS_TOKEN = "bench"  # noqa: S105
        client = Client(HTTP_AUTHORIZATION="Bearer bench")
        started = time.perf_counter()
        floor = time_get(client, "/healthz", repeat=21)
        metrics = time_get(client, "/metrics", repeat=21)
        elapsed = time.perf_counter() - started
        print(f"\n{rows:,} webhook events, {rows // 10:,} KYC cases (median of 21):")
        print(f"  {'/healthz (the floor)':<40} {floor.p50:8.2f} ms  {floor.queries:3d} queries")
        print(f"  {'/metrics':<40} {metrics.p50:8.2f} ms  {metrics.queries:3d} queries")
        print(f"  {'ratio':<40} {metrics.p50 / floor.p50:8.1f}x   ({elapsed:.1f} s measuring)")
        measuring.report(
            "metrics_scrape",
            [
                Figure("/metrics scrape, p50", metrics.p50, "ms", floor.p50, "/healthz"),
                Figure("/metrics scrape, p99", metrics.p99, "ms", floor.p99, "/healthz p99"),
            ],
            details={"webhook_events": rows, "queries": metrics.queries},
        )


if __name__ == "__main__":
    main()
