"""How long `seed_demo` takes to load the demo (issue 12: under 30 seconds), on a throwaway test
database (PostgreSQL when DATABASE_URL points at one, else SQLite), and how many rows it wrote.

    make bench                    # or: .venv/bin/python bench/demo_load.py --days 90
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()

    from audits.models import PaymentAudit
    from kyc.management.commands import seed_demo
    from payments.models import Payment, Refund

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            seed_demo.CREDENTIALS_FILE = Path(scratch) / "demo_credentials.json"
            print(f"Loading {args.days} days of demo data on {connection.vendor}...")
            started, cpu = time.perf_counter(), time.process_time()
            call_command("seed_demo", "--days", str(args.days), stdout=io.StringIO())
            wall, used = time.perf_counter() - started, time.process_time() - cpu
        payments, refunds = Payment.objects.count(), Refund.objects.count()
        audits = PaymentAudit.objects.count()
        print(f"  {wall:.1f} s ({used:.1f} s of CPU in this process)")
        print(f"  {payments} payments, {refunds} refunds, {audits} audit rows")
        print(f"  {payments / wall:.0f} payments per second, with everything around them")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
