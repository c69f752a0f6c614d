"""What the audit trail costs per change: an update of a Payment with and without the audit
receivers (both trails plus the hash chain), each in its own transaction, on a throwaway test
database (PostgreSQL when DATABASE_URL points at one, else SQLite); by one thread, then by two
threads at once (each its own connection and its own payments), as two web workers would.

    make bench                    # or: .venv/bin/python bench/audit_overhead.py --changes 2000
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import threading
import time
from collections.abc import Callable

import measuring

measuring.setup_django()

from django.db import connection, connections, transaction  # noqa: E402
from django.db.models.signals import post_delete, post_save, pre_save  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from measuring import Figure, throwaway_database  # noqa: E402

from audits import receivers  # noqa: E402
from payments.models import Payment  # noqa: E402
from payments.services.payments import payment_record  # noqa: E402


def _update(payments: list[Payment], label: str) -> float:
    started = time.perf_counter()
    for n, payment in enumerate(payments):
        with transaction.atomic():
            payment.description = f"{label} {n}"
            payment.save()
    return time.perf_counter() - started


def _update_in_threads(parts: list[list[Payment]], label: str) -> float:
    """Wall time for each thread to update its own payments, all threads at once."""
    barrier = threading.Barrier(len(parts) + 1)
    errors: list[BaseException] = []

    def work(payments: list[Payment]) -> None:
        try:
            barrier.wait()
            _update(payments, label)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def _audit_receivers(connect: bool) -> None:
    uid = f"audits.{Payment._meta.label}"
    for signal, receiver in (
        (pre_save, receivers.before_save),
        (post_save, receivers.after_save),
        (post_delete, receivers.after_delete),
    ):
        if connect:
            signal.connect(receiver, sender=Payment, dispatch_uid=uid)
        else:
            signal.disconnect(sender=Payment, dispatch_uid=uid)


def _plain_then_audited(
    rounds: int, measure: Callable[[str], float], *, tag: str = "", heading: str = ""
) -> tuple[list[float], list[float]]:
    """The seconds of `rounds` rounds of `measure` without, then with the audit receivers:
    alternated round by round, so that a change in the machine's load falls on both."""
    plain: list[float] = []
    audited: list[float] = []
    for round_number in range(1, rounds + 1):
        _audit_receivers(connect=False)
        plain.append(measure(f"plain{tag} {round_number}"))
        _audit_receivers(connect=True)
        audited.append(measure(f"audited{tag} {round_number}"))
        print(
            f"  {heading}round {round_number}/{rounds}: plain {plain[-1]:.3f}s, "
            f"audited {audited[-1]:.3f}s"
        )
    return plain, audited


def _per_change(
    heading: str,
    plain: list[float],
    audited: list[float],
    changes: int,
    *,
    label: str,
    tail: str = "",
) -> Figure:
    """Prints the median milliseconds per change without and with the audit (`tail` ends the
    second line); returns the audited one as a figure beside the plain save."""
    plain_ms = statistics.median(plain) / changes * 1000
    audited_ms = statistics.median(audited) / changes * 1000
    print(heading)
    print(f"  without audit: {plain_ms:.3f} ms per change")
    print(f"  with audit:    {audited_ms:.3f} ms per change ({audited_ms / plain_ms:.2f}x){tail}")
    return Figure(label, audited_ms, "ms", plain_ms, "plain save")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one audited round")
    parser.add_argument("--threads", type=int, default=2, help="the concurrent measure's threads")
    args = parser.parse_args()

    with throwaway_database():
        merchant = measuring.bench_merchant()
        print(f"Creating {args.changes} payments on {connection.vendor}...")
        payments = [
            payment_record(
                merchant=merchant,
                gateway="stripe",
                amount=100 + n,
                currency="EUR",
                gateway_reference=f"pi_bench_{n}",
            )
            for n in range(args.changes)
        ]
        plain, audited = _plain_then_audited(args.rounds, lambda label: _update(payments, label))
        # The same changes by N threads at once: each thread its own half of the payments.
        # SQLite allows one writer at a time (its in-memory test database locks the table).
        parts = [payments[n :: args.threads] for n in range(args.threads)]
        plain_n, audited_n = _plain_then_audited(
            args.rounds if connection.vendor != "sqlite" else 0,
            lambda label: _update_in_threads(parts, label),
            tag=f" x{args.threads}",
            heading=f"{args.threads} threads, ",
        )
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(_update, payments, "profiled")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
        connection.queries_log.clear()
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            payments[0].description = "counted"
            payments[0].save()
        figures = [
            _per_change(
                f"\nPayment update, median of {args.rounds} rounds x {args.changes} changes:",
                plain,
                audited,
                args.changes,
                label="audited change, 1 thread",
                tail=f", {len(queries)} queries per change:",
            )
        ]
        for query in queries.captured_queries:
            print(f"    {query['sql'][:110]}")
        if not plain_n:
            print(f"\n{args.threads} threads at once: PostgreSQL only (SQLite has one writer).")
        else:
            figures.append(
                _per_change(
                    f"\nThe same by {args.threads} threads at once (wall time per change):",
                    plain_n,
                    audited_n,
                    args.changes,
                    label=f"audited change, {args.threads} threads",
                )
            )
        measuring.report(
            "audit_overhead",
            [dataclasses.replace(f, target="<= 2.5x") for f in figures],
            details={"changes": args.changes, "queries_per_change": len(queries)},
        )


if __name__ == "__main__":
    main()
