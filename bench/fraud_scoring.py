"""What scoring a payment costs as the stored history grows: the fraud rules (six payment
rules: card, email, IP and device counts, the merchant's hourly sum, the amount outlier) score
new payments with 10,000 payments (and their signals) stored, then with --large stored (the
extra history older than the windows, as a real one is). Prints the milliseconds and queries
per payment and the payments scored per second, at each size: the cost must stay flat.

On a throwaway PostgreSQL test database (DATABASE_URL must point at PostgreSQL: the history is
filled with generate_series).

    make bench BENCH_ARGS=--large=1000000   # or: .venv/bin/python bench/fraud_scoring.py
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection, reset_queries, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

from audits import roles  # noqa: E402
from payments.fraud.engine import fraud_score_payment  # noqa: E402
from payments.fraud.services import fraud_rule_create  # noqa: E402
from payments.models import Merchant, Payment  # noqa: E402
from payments.services.merchants import merchant_create  # noqa: E402

MERCHANTS = 50
RECENT = 10_000  # payments of the last 7 days: the windows' traffic, the same at every size
SCORED = 1_000  # new payments scored at each size


def _window(key: str, minutes: int, most: int) -> dict[str, object]:
    return {"subject": "payment", "key": key, "window_minutes": minutes, "max_count": most}


RULES = [
    ("card-burst", "velocity_count", _window("card", 60, 5)),
    ("email-burst", "velocity_count", _window("email", 1440, 10)),
    ("ip-burst", "velocity_count", _window("ip", 60, 20)),
    ("device-burst", "velocity_count", _window("device", 60, 10)),
    (
        "merchant-volume",
        "velocity_sum",
        {"subject": "payment", "key": "merchant", "window_minutes": 60, "max_amount": 10**9},
    ),
    ("odd-amount", "amount_outlier", {"max_z": 4, "min_history": 20}),
]


def _insert(count: int, *, first_day: int, last_day: int, offset: int) -> None:
    """`count` captured payments and their signals, spread between `first_day` and `last_day`
    days ago, over the merchants; keys drawn from pools so that windows have company."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO payments_payment (merchant_id, gateway, gateway_reference,
                charge_reference, client_key, amount, currency, captured_amount,
                refunded_amount, status, card_brand, card_last4, customer_email,
                customer_email_index, description, created_at, updated_at)
            SELECT m.ids[1 + (g %% %(merchants)s)], 'stripe', 'pi_bench_' || (g + %(offset)s),
                '', '', 500 + (g * 7919) %% 20000, 'EUR', 500 + (g * 7919) %% 20000, 0,
                'captured', 'visa', '4242', '', '', '',
                now() - make_interval(days => %(first)s)
                    - (g::float / %(count)s) * make_interval(days => %(span)s),
                now()
            FROM generate_series(1, %(count)s) AS g,
                 (SELECT array_agg(id ORDER BY id) AS ids FROM payments_merchant) AS m
            """,
            {
                "merchants": MERCHANTS,
                "offset": offset,
                "count": count,
                "first": first_day,
                "span": last_day - first_day,
            },
        )
        cursor.execute(
            """
            INSERT INTO payments_fraudsignal (kind, merchant_id, payment_id, currency, amount,
                card, email, ip, device, at)
            SELECT 'payment', p.merchant_id, p.id, p.currency, p.amount,
                'card' || (p.id % 40000), md5('email' || (p.id % 30000)),
                '10.' || (p.id % 200) || '.' || (p.id % 250) || '.7',
                md5('device' || (p.id % 35000)), p.created_at
            FROM payments_payment p
            WHERE NOT EXISTS (SELECT 1 FROM payments_fraudsignal s WHERE s.payment_id = p.id)
            """
        )
        cursor.execute("ANALYZE payments_payment")
        cursor.execute("ANALYZE payments_fraudsignal")


def _score_share(merchants: list[Merchant], first: int) -> tuple[list[float], int]:
    """Score SCORED new payments, one transaction each, as payment_record does (the merchant's
    row locked, the payment inserted, then scored): (seconds each scoring took, queries of the
    last one)."""
    timings = []
    queries = 0
    for n in range(first, first + SCORED):
        merchant = merchants[n % len(merchants)]
        with transaction.atomic():
            Merchant.objects.select_for_update().get(pk=merchant.pk)
            payment = Payment.objects.create(
                merchant=merchant, gateway="stripe", amount=500 + (n * 131) % 20000,
                currency="EUR", customer_email=f"c{n % 30000}@example.com",
            )  # fmt: skip
            started = time.perf_counter()
            if n == first + SCORED - 1:
                reset_queries()  # DEBUG's query log is capped: count from empty
                with CaptureQueriesContext(connection) as captured:
                    fraud_score_payment(payment=payment, card_fingerprint=f"card{n % 40000}")
                queries = len(captured)
            else:
                fraud_score_payment(payment=payment, card_fingerprint=f"card{n % 40000}")
            timings.append(time.perf_counter() - started)
    return timings, queries


def _in_process(merchants: list[Merchant], first: int, out: Any) -> None:
    connection.close()  # a connection of its own
    started = time.perf_counter()
    timings, queries = _score_share(merchants, first)
    out.send((timings, queries, time.perf_counter() - started))
    connection.close()


_numbered = [0]  # payments numbered so far: each run's cards, emails and amounts are new


def _score(merchants: list[Merchant], label: str, processes: int) -> dict[str, Any]:
    """Each process scores SCORED payments of its own merchants (a merchant's payments are
    serialised by its row lock, as in production), all at once. payments/s: scorings per
    second of scoring time, summed over the processes that ran side by side; end to end:
    payments created and scored per second of wall time (the payment's insert, the merchant's
    lock and the commit included)."""
    first = _numbered[0]
    _numbered[0] += SCORED * processes
    started = time.perf_counter()
    if processes == 1:
        results = [(*_score_share(merchants, first), 0.0)]
    else:
        connection.close()  # not shared with the children
        context = multiprocessing.get_context("fork")
        pipes, children = [], []
        for p in range(processes):
            receive, send = context.Pipe(duplex=False)
            share = merchants[p::processes]
            child = context.Process(target=_in_process, args=(share, first + p * SCORED, send))
            child.start()
            pipes.append(receive)
            children.append(child)
        results = [pipe.recv() for pipe in pipes]
        for child in children:
            child.join()
    wall = time.perf_counter() - started
    timings = [t for result in results for t in result[0]]
    rate = sum(len(result[0]) / sum(result[0]) for result in results)
    stored = Payment.objects.count()
    per_payment = statistics.mean(timings) * 1000
    print(
        f"  {label:<34} {stored:>10,} stored  {processes} process(es)  {per_payment:6.2f} "
        f"ms/payment (median {statistics.median(timings) * 1000:5.2f})  "
        f"{results[0][1]:2d} queries  {rate:7.0f} payments/s  "
        f"(end to end {len(timings) / wall:5.0f}/s)  load {_load()}"
    )
    return {
        "stored": stored,
        "processes": processes,
        "ms": [t * 1000 for t in timings],
        "payments_per_s": rate,
        "queries": results[0][1],
    }


def _load() -> str:
    return (
        Path("/proc/loadavg").read_text().split(" ", 1)[0]
        if Path("/proc/loadavg").exists()
        else "?"
    )


def _floor() -> float:
    """Milliseconds of one round trip (SELECT 1): what no statement can go below here."""
    with connection.cursor() as cursor:
        started = time.perf_counter()
        for _ in range(1000):
            cursor.execute("SELECT 1")
            cursor.fetchone()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=None, help="ignored (the other benches')")
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1, 2], help="scoring side by side"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("bench/fraud_scoring.py: skipped, needs PostgreSQL (set DATABASE_URL).")
        return
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        officer = User.objects.create_user("bench-officer", password=None, is_staff=True)
        from django.contrib.auth.models import Group

        officer.groups.add(Group.objects.get(name=roles.COMPLIANCE_OFFICER))
        for key, kind, params in RULES:
            fraud_rule_create(key=key, name=key, kind=kind, params=params, score=20, actor=officer)
        merchants = []
        for n in range(MERCHANTS):
            merchant = merchant_create(
                legal_name=f"Bench {n} Ltd", country="GB", contact_email=f"b{n}@example.com"
            )
            merchant.status = Merchant.Status.ACTIVE  # bench data: no KYC case to approve
            with transaction.atomic():
                merchant.save()
            merchants.append(merchant)
        print(f"Scoring {SCORED:,} new payments with {len(RULES)} rules on PostgreSQL:")
        _insert(RECENT, first_day=0, last_day=7, offset=0)
        floor = _floor()
        print(f"  round trip floor (SELECT 1): {floor:.3f} ms, load {_load()}")
        rounds = [
            _score(merchants, f"{RECENT:,} stored (the last 7 days)", processes)
            for processes in args.processes
        ]
        extra = max(args.large - RECENT - SCORED, 0)
        batch = 250_000
        for start in range(0, extra, batch):
            size = min(batch, extra - start)
            _insert(size, first_day=8, last_day=365, offset=RECENT + start)
            print(f"  inserted {start + size:,} of {extra:,} older payments and their signals")
        print(f"  round trip floor (SELECT 1): {_floor():.3f} ms, load {_load()}")
        rounds += [
            _score(merchants, "plus history older than the windows", processes)
            for processes in args.processes
        ]
        _report(rounds, floor)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def _report(rounds: list[dict[str, Any]], floor_ms: float) -> None:
    """make bench's summary (bench/measuring.py): payments/s per round beside the round-trip
    floor (a payment's scoring costs at least two round trips)."""
    from measuring import Figure, report

    report(
        "fraud_scoring",
        [
            Figure(
                f"scoring, {r['stored']:,} stored, {r['processes']} process(es)",
                r["payments_per_s"],
                "payments/s",
                floor=1000 / floor_ms,
                floor_name="SELECT 1 round trips/s",
                target=">= 2000",
            )
            for r in rounds
        ],
        details={"rounds": [r for r in rounds if r["processes"] == 1]},
    )


if __name__ == "__main__":
    main()
