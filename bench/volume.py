"""generate_data at a chosen size on a throwaway test database, then verify_audit_chain over
every row: rows per second for each table, and the chain's verification speed. Figures are
printed and written to var/bench/volume.json.

    make bench VOLUME_BENCH_ARGS="--payments=1000000 --kyc-cases=100000 --audit-rows=10000000"
"""

from __future__ import annotations

import argparse
import io
import time

import measuring

measuring.setup_django()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from measuring import Figure, throwaway_database  # noqa: E402

from audits.verify import verify_database  # noqa: E402
from kyc.demo import volume  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--kyc-cases", type=int, default=10_000)
    parser.add_argument("--audit-rows", type=int, default=200_000)
    args = parser.parse_args()
    timings: dict[str, float] = {}
    # Time each stage through the command's own progress calls.
    real = {
        name: getattr(volume, name)
        for name in ("payments_generate", "cases_generate", "audit_rows_generate")
    }

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
    figures = {
        "database": connection.vendor,
        "payments": args.payments,
        "payments_per_s": args.payments / timings["payments_generate"],
        "kyc_cases": args.kyc_cases,
        "kyc_cases_per_s": args.kyc_cases / timings["cases_generate"],
        "audit_rows": args.audit_rows,
        "audit_rows_per_s": args.audit_rows / timings["audit_rows_generate"],
        "verify_rows": report.rows_checked,
        "verify_rows_per_s": report.rows_checked / verify_s,
    }
    print(f"\ngenerate_data and verify_audit_chain on {connection.vendor}:")
    for label, value in [
        (f"payments ({args.payments:,})", f"{figures['payments_per_s']:,.0f} rows/s"),
        (f"KYC cases ({args.kyc_cases:,})", f"{figures['kyc_cases_per_s']:,.0f} rows/s"),
        (
            f"audit rows, chained ({args.audit_rows:,})",
            f"{figures['audit_rows_per_s']:,.0f} rows/s",
        ),
        (
            f"verify_audit_chain, every row ({report.rows_checked:,})",
            f"{figures['verify_rows_per_s']:,.0f} rows/s",
        ),
    ]:
        print(f"  {label:<52} {value:>16}")
    measuring.report(
        "volume",
        [
            Figure("generate_data, payments", figures["payments_per_s"], "rows/s"),
            Figure("generate_data, KYC cases", figures["kyc_cases_per_s"], "rows/s"),
            Figure("generate_data, chained audit rows", figures["audit_rows_per_s"], "rows/s"),
            Figure(
                "verify_audit_chain, every row",
                figures["verify_rows_per_s"],
                "rows/s",
                target=">= 100000",
            ),
        ],
        details=figures,
    )


if __name__ == "__main__":
    main()
