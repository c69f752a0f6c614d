"""The audit search at full size (issue 14): the IP search reads (ip_address, created_at) in
order, and a search's page counts no further than it needs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audits import selectors
from audits.views import SEARCH_COUNT_LIMIT
from tests.audits.test_search_indexes import _fill_postgresql

pytestmark = pytest.mark.django_db


def test_the_ip_index_holds_the_date_after_the_address() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "payment_audits")
    assert constraints["payment_audit_ip_idx"]["columns"] == ["ip_address", "created_at"]


@pytest.mark.postgres
def test_a_search_by_ip_reads_the_addresses_rows_newest_first_from_its_index() -> None:
    _fill_postgresql(User.objects.create(username="rare-actor"))
    plan = selectors.audit_search(ip_address="10.0.7.1")[:51].explain()
    assert "payment_audit_ip_idx" in plan, plan
    # The date bound is read from the index with the address, not filtered row by row.
    assert "Index Cond: ((ip_address = '10.0.7.1'::inet) AND (created_at <" in plan, plan
    assert "Filter: (ip_address" not in plan, plan


def _count_sql(client, url: str) -> str:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(*)")]
    assert len(counts) == 1, counts
    return counts[0]


@pytest.mark.parametrize("filters", ["", "action=payment.upd", "ip_address=10.0.7.1"])
def test_a_search_page_counts_no_further_than_its_cap(admin_client, filters: str) -> None:
    assert f"LIMIT {SEARCH_COUNT_LIMIT + 1}" in _count_sql(admin_client, f"/audits/?{filters}")


def test_a_deeper_page_counts_as_far_as_it_so_older_pages_stay_reachable(admin_client) -> None:
    deep = SEARCH_COUNT_LIMIT // 50 + 10
    sql = _count_sql(admin_client, f"/audits/?page={deep}")
    assert f"LIMIT {deep * 50 + 1}" in sql
