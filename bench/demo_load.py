"""How long `seed_demo` takes to load the demo (issue 12: under 30 seconds), on a throwaway test
database (PostgreSQL when DATABASE_URL points at one, else SQLite), and how many rows it wrote.

    make bench                    # or: .venv/bin/python bench/demo_load.py --days 90
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import measuring

measuring.setup_django()

from django.core.management import call_command  # noqa: E402
from measuring import Figure, throwaway_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()

    from audits.models import PaymentAudit
    from kyc.management.commands import seed_demo
    from payments.models import Payment, Refund

    with throwaway_database():
        with tempfile.TemporaryDirectory() as scratch:
            seed_demo.CREDENTIALS_FILE = Path(scratch) / "demo_credentials.json"
            print(f"Loading {args.days} days of demo data ...")
            started, cpu = time.perf_counter(), time.process_time()
            call_command("seed_demo", "--days", str(args.days), stdout=io.StringIO())
            wall, used = time.perf_counter() - started, time.process_time() - cpu
        payments, refunds = Payment.objects.count(), Refund.objects.count()
        audits = PaymentAudit.objects.count()
        print(f"  {wall:.1f} s ({used:.1f} s of CPU in this process)")
        print(f"  {payments} payments, {refunds} refunds, {audits} audit rows")
        print(f"  {payments / wall:.0f} payments per second, with everything around them")
        measuring.report(
            "demo_load",
            # Issue 12's target is the 90 days' load; a shorter demo is measured against it too.
            [Figure(f"seed_demo, {args.days} days", wall, "s", target="<= 30")],
            details={"payments": payments, "refunds": refunds, "audit_rows": audits},
        )


if __name__ == "__main__":
    main()
