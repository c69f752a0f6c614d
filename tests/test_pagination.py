"""LargeTablePaginator: a capped count that grows with the page asked for, and a partitioned
table's estimate from its partitions."""

from __future__ import annotations

import pytest
from django.db import connection

from audits.models import PaymentAudit
from config.pagination import ESTIMATE_SQL, EXACT_COUNT_LIMIT, LargeTablePaginator
from payments.models import Merchant
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db


def _merchants(n: int) -> None:
    for _ in range(n):
        MerchantFactory()


def test_the_first_pages_count_to_the_limit_and_a_deeper_page_further() -> None:
    _merchants(7)
    rows = Merchant.objects.filter(pk__gt=0).order_by("pk")
    first = LargeTablePaginator(rows, 2, count_limit=3)
    assert first.get_page(1).has_next()
    assert first.count == 4  # limit + 1: "more than 3"
    deep = LargeTablePaginator(rows, 2, count_limit=3)
    page = deep.get_page(3)
    assert page.number == 3
    assert deep.count == 7
    assert [m.pk for m in page] == [m.pk for m in rows[4:6]]


def test_a_page_past_the_end_is_the_last_and_a_deep_ask_never_counts_past_the_global_cap() -> None:
    _merchants(3)
    rows = Merchant.objects.filter(pk__gt=0).order_by("pk")
    paginator = LargeTablePaginator(rows, 2, count_limit=1)
    assert paginator.get_page(10**9).number == 2
    assert paginator.count_limit == EXACT_COUNT_LIMIT
    assert LargeTablePaginator(rows, 2, count_limit=1).get_page("x").number == 1


@pytest.mark.postgres
def test_a_partitioned_tables_estimate_is_its_partitions_not_its_never_analyzed_parent() -> None:
    for _ in range(3):
        MerchantFactory()  # each writes audit rows
    rows = PaymentAudit.objects.count()
    with connection.cursor() as cursor:
        # What autovacuum does: it analyzes each partition, never the partitioned parent.
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'payment_audits'::regclass"
        )
        for (partition,) in cursor.fetchall():
            cursor.execute(f"ANALYZE {connection.ops.quote_name(partition)}")
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'payment_audits'::regclass")
        assert cursor.fetchone()[0] != rows
        cursor.execute(ESTIMATE_SQL, ["payment_audits"])
        assert cursor.fetchone()[0] == rows
