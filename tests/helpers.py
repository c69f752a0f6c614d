"""Plain helpers more than one test module uses (fixtures live in conftest.py)."""

from __future__ import annotations

from django.apps import apps
from django.db import connection


def row_counts() -> dict[str, int]:
    """Rows in every table, the audit trails included, in one query (a count per model would
    be ~40 round trips): compare before and after to show a request wrote nothing."""
    models = [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy]
    sql = " UNION ALL ".join(
        f"SELECT %s, COUNT(*) FROM {connection.ops.quote_name(m._meta.db_table)}" for m in models
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [m._meta.label for m in models])
        return dict(cursor.fetchall())
