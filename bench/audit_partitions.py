"""The audit search on payment_audits partitioned by month vs a plain table, at N rows spread
over 12 months, on the database DATABASE_URL names (PostgreSQL only; it must be a throwaway
one: the bench migrates it and fills payment_audits with unverifiable test rows).

Partitioned first (as migrate leaves it, with a partition per month of the rows), then the same
rows in a plain table by migrating audits back to 0008, then forward again; the two migrations
are timed too. Each search is the screen's first page (51 rows, newest first) and its capped
count, the median of --repeat runs; the floor is a primary-key lookup in the same run, by id
alone (every partition's index) and by id and created_at (the console's links: one partition).
Each layout is measured after VACUUM ANALYZE, as autovacuum leaves a table in production: a
plain ANALYZE leaves the trigram indexes' GIN pending lists, which every "action contains"
search then reads in full (175 ms instead of 15 at 1,000,000 rows).

    DATABASE_URL=postgres://.../bench_db .venv/bin/python bench/audit_partitions.py --rows 1000000
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from audits import context, partitions, selectors  # noqa: E402
from audits.models import PaymentAudit  # noqa: E402

# Unverifiable rows (chains 900-915), like tests/audits/test_search_indexes.py's.
FILL = """
INSERT INTO payment_audits (id, user_id, action_type, object_type, object_id, before_state,
    after_state, ip_address, device_id, request_id, created_at, chain, seq, prev_hash, row_hash)
SELECT gen_random_uuid(), %(user)s,
       CASE WHEN i %% 1000 = 0 THEN 'security.user.create'
            WHEN i %% 2 = 0 THEN 'api.payment.update' ELSE 'task.refund.update' END,
       'payments.payment', i::text, NULL, '{"amount": 1}'::jsonb,
       ('10.0.' || (i %% 250) || '.1')::inet, 'dev-' || (i %% 30000), '',
       now() - (i * %(step)s) * interval '1 second',
       900 + i %% 16, i, repeat('0', 64), repeat('0', 64)
FROM generate_series(%(low)s, %(high)s) AS i
"""

SEARCHES: dict[str, dict[str, Any]] = {
    "none": {},
    "device": {"device_id": "dev-4242"},
    "action contains": {"action": "user.cre"},
    "ip": {"ip_address": "10.0.7.1"},
    "object": {"object_type": "payments.payment", "object_id": "123456"},
    "dates (one day, 100 days ago)": {"date_from": "D-100", "date_to": "D-100"},
}


def fill(rows: int) -> None:
    now = timezone.now()
    partitions.ensure(
        partitions.months_between((now - datetime.timedelta(days=366)).date(), now.date())
    )
    step = 365 * 24 * 3600 / rows
    user = context.ensure_system_user().pk
    with connection.cursor() as cursor:
        for low in range(1, rows + 1, 200_000):
            high = min(low + 199_999, rows)
            cursor.execute(FILL, {"user": user, "step": step, "low": low, "high": high})
    settle()


def settle() -> None:
    """What autovacuum does after a bulk load: statistics, and the GIN pending lists merged."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE payment_audits")


def median_ms(run: Callable[[], object], repeat: int) -> float:
    run()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def measure(repeat: int) -> dict[str, float]:
    today = timezone.localdate()
    any_id, at = PaymentAudit.objects.values_list("id", "created_at").first()  # type: ignore[misc]
    figures = {
        "floor: one row by primary key": median_ms(
            lambda: PaymentAudit.objects.filter(id=any_id).first(), repeat
        ),
        "one row by id and created_at (console link)": median_ms(
            lambda: PaymentAudit.objects.filter(id=any_id, created_at=at).first(), repeat
        ),
    }
    for label, filters in SEARCHES.items():
        filters = {
            k: today - datetime.timedelta(days=int(v[2:])) if str(v).startswith("D-") else v
            for k, v in filters.items()
        }

        def page(filters: dict[str, Any] = filters) -> None:
            rows = selectors.audit_search(**filters)
            list(rows[:51])
            rows.order_by()[:10_001].count()

        figures[label] = median_ms(page, repeat)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("PostgreSQL only: point DATABASE_URL at a throwaway database.")
    call_command("migrate", verbosity=0)
    if PaymentAudit.objects.filter(chain__gte=900).exists():
        sys.exit("payment_audits holds bench rows already: use a fresh throwaway database.")
    started = time.perf_counter()
    fill(args.rows)
    print(f"filled {args.rows:,} rows in {time.perf_counter() - started:.1f}s")
    partitioned = measure(args.repeat)
    started = time.perf_counter()
    call_command("migrate", "audits", "0008", verbosity=0)
    back = time.perf_counter() - started
    settle()
    plain = measure(args.repeat)
    started = time.perf_counter()
    call_command("migrate", "audits", verbosity=0)
    forward = time.perf_counter() - started
    print(f"migrate to a plain table: {back:.1f}s; back to partitioned: {forward:.1f}s")
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    print(f"{'audit search (first page + capped count)':42} {'partitioned':>12} {'plain':>10}")
    for label in partitioned:
        print(f"{label:42} {partitioned[label]:10.1f}ms {plain[label]:8.1f}ms")


if __name__ == "__main__":
    main()
