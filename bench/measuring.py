"""What the benches share: Django's set-up, a throwaway test database, bench data, timing with
percentiles, and the report each bench writes to var/bench/<bench>.json, which
bench/summary.py gathers into one table and the plots at the end of `make bench`.

A bench starts with `measuring.setup_django()` and imports the project after it. Only the
timing and report helpers are safe to import before Django is set up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: on a shared machine every figure needs them."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return [round(v, 2) for v in os.getloadavg()]


_STARTED_AT, _LOAD_AT_START = time.time(), load_average()


def setup_django(**environ: str) -> None:
    """The project importable and Django set up (DEBUG on unless the environment says)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    for name, value in environ.items():
        os.environ.setdefault(name, value)
    import django

    django.setup()


@contextmanager
def throwaway_database() -> Iterator[None]:
    """A fresh test database for the bench (test_<name>, dropped afterwards): PostgreSQL when
    DATABASE_URL points at one, else SQLite."""
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def rows_option(default: int = 100_000) -> int:
    """The `--rows` a bench that fills its own tables takes: how many rows to fill."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=default)
    return int(parser.parse_args().rows)


def print_inserted(done: int, total: int, what: str) -> None:
    """A bulk fill's progress line, printed after each batch."""
    print(f"  inserted {min(done, total):,} of {total:,} {what}")


def analyze(*tables: str) -> None:
    """Fresh planner statistics and no dead rows after a bulk fill, as autovacuum would leave
    them in time: generate_data updates every payment it inserts, and on a server without
    autovacuum the newest-first index then walked ~7,000 pages of dead entries for 50 rows."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")


def bulk_fill(
    model: Any,
    total: int,
    row: Callable[[int], Any],
    *,
    what: str,
    batch: int = 20_000,
    then: Callable[[int, list[Any]], None] | None = None,
) -> None:
    """`total` rows of `model`, `row(n)` the n-th, inserted in batches straight into the table
    (bench data: the audited managers refuse bulk writes) with a progress line after each, then
    analyzed. `then(number, created)` runs after each batch's insert, numbered from 0."""
    from django.db.models import QuerySet

    for number, start in enumerate(range(0, total, batch)):
        created = QuerySet(model).bulk_create(
            [row(n) for n in range(start, min(start + batch, total))]
        )
        if then is not None:
            then(number, created)
        print_inserted(start + batch, total, what)
    analyze(model._meta.db_table)


def bench_merchant(n: int = 0, *, active: bool = True) -> Any:
    """A merchant made by the service, saved active directly (bench data: no KYC case)."""
    from django.db import transaction

    from payments.models import Merchant
    from payments.services.merchants import merchant_create

    suffix = f" {n}" if n else ""
    merchant = merchant_create(
        legal_name=f"Bench{suffix} Ltd", country="GB", contact_email=f"bench{n or ''}@example.com"
    )
    if active:
        merchant.status = Merchant.Status.ACTIVE
        with transaction.atomic():
            merchant.save()
    return merchant


def staff_client(username: str = "bench") -> Any:
    """A test client signed in as a new superuser (every screen and the console)."""
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.create_superuser(username, f"{username}@example.com", None))
    return client


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile by nearest rank (no interpolation between two timings)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Timings:
    p50: float
    p95: float
    p99: float
    queries: int
    samples: int
    # The database's share (the sum of the statements' times as Django logs them, to the
    # millisecond): what grows with the data, apart from the CPU a busy machine takes away.
    db_p50: float = 0.0
    db_p95: float = 0.0


def time_get(client: Any, url: str, *, repeat: int = 5, warm: int = 1, **headers: Any) -> Timings:
    """Milliseconds of warm GETs (p50, p95, p99) and the query count of the last one."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    for _ in range(warm):
        client.get(url, **headers)
    timings: list[float] = []
    in_database: list[float] = []
    count = 0
    for _ in range(repeat):
        reset_queries()  # DEBUG's query log is capped: each request counts from empty
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, **headers)
            timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: {response.status_code}")
        count = len(queries)
        in_database.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
    return Timings(
        p50=statistics.median(timings),
        p95=percentile(timings, 95),
        p99=percentile(timings, 99),
        queries=count,
        samples=repeat,
        db_p50=statistics.median(in_database),
        db_p95=percentile(in_database, 95),
    )


def measure(client: Any, url: str, repeat: int = 5) -> tuple[float, int]:
    """Median milliseconds and the query count of a warm GET."""
    timings = time_get(client, url, repeat=repeat)
    return timings.p50, timings.queries


@dataclass(frozen=True)
class Figure:
    """One measure as the summary shows it, beside its floor (the same thing done without the
    work being measured, in the same run) and the issue's target: "<= 50" compares the value,
    ">= 0.4x" compares the value divided by the floor."""

    name: str
    value: float
    unit: str
    floor: float | None = None
    floor_name: str = ""
    target: str = ""


_TARGET = re.compile(r"^(<=|>=)\s*([0-9.]+)\s*(x?)$")


def target_met(figure: dict[str, Any]) -> bool | None:
    """Whether a reported figure meets its target; None when it has none (or no floor)."""
    found = _TARGET.match(figure.get("target") or "")
    if not found:
        return None
    op, bound, ratio = found.group(1), float(found.group(2)), found.group(3)
    value = figure["value"]
    if ratio:
        if not figure.get("floor"):
            return None
        value = value / figure["floor"]
    return value <= bound if op == "<=" else value >= bound


def report(bench: str, figures: list[Figure], *, details: dict[str, Any] | None = None) -> Path:
    """Write var/bench/<bench>.json: the figures, the load average at the start of the bench and
    now, the database; `details` holds what the bench's plot needs beyond the figures."""
    from django.db import connection

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{bench}.json"
    document = {
        "bench": bench,
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.time() - _STARTED_AT, 1),
        "database": connection.vendor,
        "load_average_start": _LOAD_AT_START,
        "load_average_end": load_average(),
        "figures": [asdict(f) for f in figures],
        "details": details or {},
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"  (written to {path.relative_to(ROOT)}, load average {document['load_average_end']})")
    return path


class CallTimer:
    """Times every call of a function, in rounds: lets a bench be reported without changing how
    it measures. `rounds_of(f)` wraps the function that starts each round."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.rounds: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            if self.rounds:
                self.rounds[-1]["ms"].append((time.perf_counter() - started) * 1000)

    def rounds_of(
        self, function: Callable[..., Any], *, size: Callable[[], int]
    ) -> Callable[..., Any]:
        def round_(*args: Any, **kwargs: Any) -> Any:
            self.rounds.append({"ms": []})
            try:
                return function(*args, **kwargs)
            finally:
                self.rounds[-1]["size"] = size()

        return round_
