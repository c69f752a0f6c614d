"""Pagination that never counts a huge table on each request."""

from __future__ import annotations

from functools import cached_property
from typing import Any, cast

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet

# Below this many rows an exact COUNT(*) is cheap; above it, an unfiltered list shows
# PostgreSQL's own estimate and a filtered one counts no further than this.
EXACT_COUNT_LIMIT = 10_000


def count_label(count: int, limit: int) -> str:
    """A count taken no further than limit + 1, as a badge shows it: "1,000+" past it."""
    return f"{limit:,}+" if count > limit else str(count)


class LargeTablePaginator(Paginator):
    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is None:
            return super().count
        queryset = cast("QuerySet[Any]", self.object_list)  # only a QuerySet has a query
        connection = connections[queryset.db]
        if connection.vendor == "postgresql" and not query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] > EXACT_COUNT_LIMIT:
                return int(row[0])
        # A sliced count becomes SELECT COUNT(*) FROM (... LIMIT n): it stops at the limit.
        return queryset.order_by()[: EXACT_COUNT_LIMIT + 1].count()
