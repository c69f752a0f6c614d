"""How the staff lists behave at volume: the payments changelist in the console (Django's
default paginator vs ours) and the operations list (first and deep keyset pages), on a
throwaway test database filled with N payments (PostgreSQL when DATABASE_URL points at one).

    make bench BENCH_ARGS=--rows=200000      # or: .venv/bin/python bench/console_lists.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.paginator import Paginator  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import QuerySet  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402
from measuring import analyze_payments, measure  # noqa: E402

from payments.admin import PaymentAdmin  # noqa: E402
from payments.models import Merchant, Payment  # noqa: E402
from payments.services.merchants import merchant_create  # noqa: E402


def fill(rows: int) -> None:
    merchant = merchant_create(
        legal_name="Bench Ltd", country="GB", contact_email="bench@example.com"
    )
    # Bench data: the merchant is saved active directly (no KYC case to approve).
    merchant.status = Merchant.Status.ACTIVE
    with transaction.atomic():
        merchant.save()
    now = timezone.now()
    batch = 20_000
    for start in range(0, rows, batch):
        # Test data straight into the table: the audited managers refuse bulk writes.
        QuerySet(Payment).bulk_create(
            [
                Payment(
                    merchant=merchant,
                    gateway="stripe",
                    gateway_reference=f"pi_b{n}",
                    amount=100 + n % 5000,
                    currency="EUR",
                    status="captured",
                    captured_amount=100 + n % 5000,
                    created_at=now,
                )
                for n in range(start, min(start + batch, rows))
            ]
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
        print(f"Filling {args.rows:,} payments on {connection.vendor}...")
        fill(args.rows)
        admin_user = User.objects.create_superuser("bench", "bench@example.com", "x" * 16)
        client = Client()
        client.force_login(admin_user)
        results = []
        ours = (PaymentAdmin.paginator, PaymentAdmin.show_full_result_count)
        PaymentAdmin.paginator, PaymentAdmin.show_full_result_count = Paginator, True
        results.append(
            (
                "console payments, Django's default paginator",
                *measure(client, "/admin/payments/payment/"),
            )
        )
        PaymentAdmin.paginator, PaymentAdmin.show_full_result_count = ours
        results.append(
            ("console payments, LargeTablePaginator", *measure(client, "/admin/payments/payment/"))
        )
        results.append(("/payments/ first page", *measure(client, "/payments/")))
        deep = Payment.objects.order_by("pk").values_list("pk", flat=True)[args.rows // 100]
        results.append(
            ("/payments/ page at 99% depth (keyset)", *measure(client, f"/payments/?after={deep}"))
        )
        print(f"\n{args.rows:,} payments, median of 5 requests:")
        for label, ms, queries in results:
            print(f"  {label:<48} {ms:8.1f} ms  {queries:3d} queries")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
