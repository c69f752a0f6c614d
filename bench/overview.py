"""The overview at volume: N payments over 30 days (two gateways, three currencies, every
status), the time to refresh one day's roll-ups and all 30, and the /overview/ page (time and
queries) for an administrator, who sees every section. On a throwaway test database
(PostgreSQL when DATABASE_URL points at one).

    make bench BENCH_ARGS=--rows=1000000      # or: .venv/bin/python bench/overview.py
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

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import QuerySet  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402
from measuring import analyze_payments, measure  # noqa: E402

from payments.models import Merchant, Payment  # noqa: E402
from payments.services.merchants import merchant_create  # noqa: E402
from payments.services.rollups import rollups_refresh, rollups_refresh_recent  # noqa: E402

DAYS = 30
STATUSES = ["captured"] * 7 + ["failed", "canceled", "pending", "refunded", "partially_refunded"]


def fill(rows: int) -> None:
    merchants = []
    for n in range(6):
        merchant = merchant_create(
            legal_name=f"Bench {n} Ltd", country="GB", contact_email=f"bench{n}@example.com"
        )
        # Bench data: the merchant is saved active directly (no KYC case to approve).
        merchant.status = Merchant.Status.ACTIVE
        with transaction.atomic():
            merchant.save()
        merchants.append(merchant)
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
        print(f"  inserted {min(start + batch, rows):,} of {rows:,} payments")
    analyze_payments()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(f"Filling {args.rows:,} payments over {DAYS} days on {connection.vendor}...")
        fill(args.rows)
        started = time.perf_counter()
        rollups_refresh(day=timezone.now().date())
        one_day = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        rollups_refresh_recent(days=DAYS)
        all_days = time.perf_counter() - started
        admin_user = User.objects.create_superuser("bench", "bench@example.com", "x" * 16)
        client = Client()
        client.force_login(admin_user)
        ms, queries = measure(client, "/overview/")
        print(f"\n{args.rows:,} payments over {DAYS} days:")
        print(f"  {'roll-ups, refresh one day':<48} {one_day:8.1f} ms")
        print(f"  {f'roll-ups, refresh {DAYS} days':<48} {all_days * 1000:8.1f} ms")
        print(
            f"  {'/overview/ (administrator), median of 5':<48} {ms:8.1f} ms  {queries:3d} queries"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
