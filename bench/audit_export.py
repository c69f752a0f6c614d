"""How fast the audit exports stream (/audits/export.csv and /audits/evidence.json) and whether
their memory stays constant: rows/s and the peak of Python allocations (tracemalloc, in a
second pass: tracing slows the first) at two sizes of a throwaway test database filled with
chained audit rows, beside a floor measured in the same run (the same rows read by a plain
cursor and discarded). Constant memory: the peak at the larger size is no greater than at the
smaller one.

    make bench                    # or: .venv/bin/python bench/audit_export.py --rows 100000
"""

from __future__ import annotations

import argparse
import datetime
import time
import tracemalloc
from typing import Any

import measuring

measuring.setup_django()

from audit_verify import fill  # noqa: E402
from django.db import transaction  # noqa: E402
from measuring import Figure, throwaway_database  # noqa: E402

from audits.models import PaymentAudit  # noqa: E402

EXPORTS = {"CSV": "/audits/export.csv", "evidence": "/audits/evidence.json"}


def consume(client: Any, url: str) -> int:
    """The bytes of a streamed export, read to the end and dropped."""
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"GET {url}: {response.status_code}")
    size = 0
    for chunk in response.streaming_content:
        size += len(chunk)
    return size


def rate(run: Any, rows: int) -> float:
    started = time.perf_counter()
    run()
    return rows / (time.perf_counter() - started)


def peak_kib(run: Any) -> float:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def read_only() -> None:
    """The floor: every column the exports read, through a server-side cursor, discarded."""
    with transaction.atomic():
        for _ in PaymentAudit.objects.values_list().iterator(chunk_size=2000):
            pass


def measure(client: Any, rows: int) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    runs = {name: (lambda url=url: consume(client, url)) for name, url in EXPORTS.items()}
    runs["floor"] = read_only
    for name, run in runs.items():
        found[name] = {"rows_s": rate(run, rows), "peak_kib": peak_kib(run)}
        print(
            f"  {rows:>9,} rows, {name:<9} {found[name]['rows_s']:>10,.0f} rows/s, "
            f"peak {found[name]['peak_kib']:>9,.0f} KiB (load {measuring.load_average()[0]})",
            flush=True,
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    sizes = [max(1, args.rows // 5), args.rows]
    with throwaway_database():
        client = measuring.staff_client()
        for url in EXPORTS.values():  # the first request's imports are no export's cost
            consume(client, url)
        results: dict[int, dict[str, dict[str, float]]] = {}
        filled = 0
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=args.rows)
        for size in sizes:
            print(f"Filling to {size:,} chained audit rows...", flush=True)
            fill(size - filled, start=start + datetime.timedelta(seconds=filled))
            filled = size
            measuring.analyze("payment_audits")
            # The system user's and the bench user's own rows (sign-in, exports) count too.
            results[size] = measure(client, PaymentAudit.objects.count())
        figures = [
            Figure(
                f"{name} export, {size:,} rows",
                found["rows_s"],
                "rows/s",
                floor=results[size]["floor"]["rows_s"],
                floor_name="rows read only",
                target=">= 30000",
            )
            for size, by_name in results.items()
            for name, found in by_name.items()
            if name != "floor"
        ] + [
            Figure(
                f"{name} export, peak memory growth {sizes[0]:,} -> {sizes[1]:,} rows",
                results[sizes[1]][name]["peak_kib"] / results[sizes[0]][name]["peak_kib"],
                "x",
                target="<= 1.5",
            )
            for name in EXPORTS
        ]
        measuring.report("audit_export", figures, details={"sizes": sizes, "results": results})


if __name__ == "__main__":
    main()
