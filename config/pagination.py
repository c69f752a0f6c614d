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

# The planner's row estimate of a table; a partitioned table's own is -1 (autovacuum never
# analyzes the parent), so its partitions' estimates are summed.
ESTIMATE_SQL = """
SELECT CASE WHEN c.relkind = 'p' THEN (
           SELECT coalesce(sum(greatest(p.reltuples, 0)), 0)
           FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
           WHERE i.inhparent = c.oid)
       ELSE c.reltuples END::bigint
FROM pg_class c WHERE c.oid = %s::regclass
"""


def count_label(count: int, limit: int) -> str:
    """A count taken no further than limit + 1, as a badge shows it: "1,000+" past it."""
    return f"{limit:,}+" if count > limit else str(count)


class LargeTablePaginator(Paginator):
    """`count_limit` is how far a filtered list counts for its first pages; a deeper page
    asked for counts as far as it (never past EXACT_COUNT_LIMIT), so "next" goes on working."""

    def __init__(
        self,
        object_list: Any,
        per_page: int,
        *args: Any,
        count_limit: int = EXACT_COUNT_LIMIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self.count_limit = count_limit

    def get_page(self, number: Any) -> Any:
        try:
            wanted = int(number)
        except (TypeError, ValueError):
            wanted = 1
        deepest = min(max(wanted, 1) * int(self.per_page), EXACT_COUNT_LIMIT)
        self.count_limit = max(self.count_limit, deepest)
        return super().get_page(number)

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is None:
            return super().count
        queryset = cast("QuerySet[Any]", self.object_list)  # only a QuerySet has a query
        connection = connections[queryset.db]
        if connection.vendor == "postgresql" and not query.where:
            with connection.cursor() as cursor:
                cursor.execute(ESTIMATE_SQL, [queryset.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] > EXACT_COUNT_LIMIT:
                return int(row[0])
        # A sliced count becomes SELECT COUNT(*) FROM (... LIMIT n): it stops at the limit.
        return queryset.order_by()[: self.count_limit + 1].count()
