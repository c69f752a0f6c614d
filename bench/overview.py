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
    print(f"Filling {rows:,} payments over {DAYS} days...")
    merchants = [measuring.bench_merchant(n) for n in range(1, 7)]
    today = timezone.now().date()

    def payment(n: int) -> Payment:
        status = STATUSES[n % len(STATUSES)]
        return Payment(
            merchant=merchants[n % len(merchants)],
            gateway=("stripe", "braintree")[n % 2],
            amount=100 + n % 5000,
            currency=("EUR", "GBP", "USD")[n % 3],
            status=status,
            captured_amount=0 if status in ("failed", "canceled", "pending") else 100 + n % 5000,
        )

    def to_its_day(number: int, created: list[Payment]) -> None:
        # created_at is auto_now_add: move each batch to its day afterwards.
        day = today - datetime.timedelta(days=number % DAYS)
        QuerySet(Payment).filter(pk__in=[p.pk for p in created]).update(
            created_at=datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)
        )

    measuring.bulk_fill(Payment, rows, payment, what="payments", then=to_its_day)


def main() -> None:
    rows = measuring.rows_option()
    with throwaway_database():
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
