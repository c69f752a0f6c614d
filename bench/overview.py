"""The overview at volume: N payments over 30 days (two gateways, three currencies, every
status), the time to refresh one day's roll-ups and all 30, and the /overview/ page (time and
queries) for an administrator, who sees every section. On a throwaway test database
(PostgreSQL when DATABASE_URL points at one).

    make bench BENCH_ARGS=--rows=1000000      # or: .venv/bin/python bench/overview.py
"""

from __future__ import annotations

import datetime
import time

import measuring

measuring.setup_django()

from django.db.models import QuerySet  # noqa: E402
from django.utils import timezone  # noqa: E402
from measuring import Figure, throwaway_database, time_get  # noqa: E402

from payments.models import Payment  # noqa: E402
from payments.services.rollups import rollups_refresh, rollups_refresh_recent  # noqa: E402

DAYS = 30
STATUSES = ["captured"] * 7 + ["failed", "canceled", "pending", "refunded", "partially_refunded"]


def fill(rows: int) -> None:
    merchants = [measuring.bench_merchant(n) for n in range(1, 7)]
    today = timezone.now().date()
    batch = 20_000
    for start in range(0, rows, batch):
        day = today - datetime.timedelta(days=(start // batch) % DAYS)
        # Test data straight into the table: the audited managers refuse bulk writes.
        created = QuerySet(Payment).bulk_create(
            [
                Payment(
                    merchant=merchants[n % len(merchants)],
                    gateway=("stripe", "braintree")[n % 2],
                    amount=100 + n % 5000,
                    currency=("EUR", "GBP", "USD")[n % 3],
                    status=STATUSES[n % len(STATUSES)],
                    captured_amount=0
                    if STATUSES[n % len(STATUSES)] in ("failed", "canceled", "pending")
                    else 100 + n % 5000,
                )
                for n in range(start, min(start + batch, rows))
            ]
        )
        # created_at is auto_now_add: move the batch to its day afterwards.
        QuerySet(Payment).filter(pk__in=[p.pk for p in created]).update(
            created_at=datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)
        )
        measuring.print_inserted(start + batch, rows, "payments")
    measuring.analyze_payments()


def main() -> None:
    rows = measuring.rows_option()
    with throwaway_database():
        print(f"Filling {rows:,} payments over {DAYS} days...")
        fill(rows)
        started = time.perf_counter()
        rollups_refresh(day=timezone.now().date())
        one_day = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        rollups_refresh_recent(days=DAYS)
        all_days = time.perf_counter() - started
        client = measuring.staff_client()
        floor = time_get(client, "/healthz")
        page = time_get(client, "/overview/")
        print(f"\n{rows:,} payments over {DAYS} days:")
        print(f"  {'roll-ups, refresh one day':<48} {one_day:8.1f} ms")
        print(f"  {f'roll-ups, refresh {DAYS} days':<48} {all_days * 1000:8.1f} ms")
        print(
            f"  {'/overview/ (administrator), median of 5':<48} {page.p50:8.1f} ms  "
            f"{page.queries:3d} queries"
        )
        measuring.report(
            "overview",
            [
                Figure("roll-ups, refresh one day", one_day, "ms"),
                Figure(f"roll-ups, refresh {DAYS} days", all_days * 1000, "ms"),
                Figure("/overview/ (administrator), p50", page.p50, "ms", floor.p50, "/healthz"),
            ],
            details={"rows": rows, "queries": page.queries},
        )


if __name__ == "__main__":
    main()
