"""What the page benches share (import after django.setup())."""

from __future__ import annotations

import statistics
import time

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext


def analyze_payments() -> None:
    """Fresh planner statistics after a bulk fill, as autovacuum would give them in time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE payments_payment")


def measure(client: Client, url: str, repeat: int = 5) -> tuple[float, int]:
    """Median milliseconds and the query count of a warm GET."""
    client.get(url)  # warm
    timings, count = [], 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        count = len(queries)
    return statistics.median(timings), count
