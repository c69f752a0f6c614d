"""generate_data at a chosen size on a throwaway test database, then verify_audit_chain over
every row: rows per second for each table, and the chain's verification speed. Figures are
printed and written to var/bench/volume.json.

    make bench VOLUME_BENCH_ARGS="--payments=1000000 --kyc-cases=100000 --audit-rows=10000000"
"""

from __future__ import annotations

import argparse
import io
import time
from typing import Any

import measuring

measuring.setup_django()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from measuring import Figure, throwaway_database  # noqa: E402

from audits.verify import verify_database  # noqa: E402
from kyc.demo import volume  # noqa: E402

# The tables generate_data fills, each timed through its function: the size option (the key in
# volume.json), the function, and the table's name as printed and in the summary.
STAGES = (
    ("payments", "payments_generate", "payments", "payments"),
    ("kyc_cases", "cases_generate", "KYC cases", "KYC cases"),
    ("audit_rows", "audit_rows_generate", "audit rows, chained", "chained audit rows"),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--kyc-cases", type=int, default=10_000)
    parser.add_argument("--audit-rows", type=int, default=200_000)
    args = parser.parse_args()
    timings: dict[str, float] = {}
    # Time each stage through the command's own progress calls.
    real = {function: getattr(volume, function) for _, function, _, _ in STAGES}

    def timed(name: str):  # type: ignore[no-untyped-def]
        def run(*a, **kw):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return real[name](*a, **kw)
            finally:
                timings[name] = time.perf_counter() - started

        return run

    try:
        with throwaway_database():
            for name in real:
                setattr(volume, name, timed(name))
            call_command(
                "generate_data",
                f"--merchants={args.merchants}",
                f"--payments={args.payments}",
                f"--kyc-cases={args.kyc_cases}",
                f"--audit-rows={args.audit_rows}",
                stdout=io.StringIO(),
            )
            started = time.perf_counter()
            report = verify_database()
            verify_s = time.perf_counter() - started
            assert report.ok, [str(p) for p in report.problems]
    finally:
        for name, function in real.items():
            setattr(volume, name, function)
    figures: dict[str, Any] = {"database": connection.vendor}
    reported = []
    print(f"\ngenerate_data and verify_audit_chain on {connection.vendor}:")

    def rate(key: str, rows: int, seconds: float, label: str) -> float:
        """Rows per second into the figures and the printed table."""
        per_s = rows / seconds
        figures[key], figures[f"{key}_per_s"] = rows, per_s
        what, value = f"{label} ({rows:,})", f"{per_s:,.0f} rows/s"
        print(f"  {what:<52} {value:>16}")
        return per_s

    for option, function, label, name in STAGES:
        per_s = rate(option, getattr(args, option), timings[function], label)
        reported.append(Figure(f"generate_data, {name}", per_s, "rows/s"))
    per_s = rate("verify_rows", report.rows_checked, verify_s, "verify_audit_chain, every row")
    reported.append(Figure("verify_audit_chain, every row", per_s, "rows/s", target=">= 100000"))
    measuring.report("volume", reported, details=figures)


if __name__ == "__main__":
    main()
