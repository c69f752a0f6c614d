"""The audit search uses an index for every filter it offers (issue 14, point 4): date ranges
without casts, device, actor, IP, object, and "action contains" by trigram on PostgreSQL.

payment_audits is partitioned by month there: every partition of real size is read through an
index, a partition too small to matter (the current month on its first days) may be read
whole, and a date range reads only its months' partitions."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from audits import context, partitions, selectors
from audits.models import PaymentAudit
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db

ROWS = 30_000
STEP_MINUTES = 3  # ~14,000 rows a month, over about two months
# A partition under this many rows (the current month on its first days, the oldest month's
# tail) may be read sequentially: the planner rightly finds that cheaper than any index.
REAL_SIZE = 10_000


def _fill_postgresql(rare_user: User) -> None:
    """ROWS rows straight into the table, one every STEP_MINUTES, over 3,000 devices and 250 client
    addresses; one action in a thousand is rare, and so is one actor. Each month gets its
    partition first, as in production. Test data only: their chains (900-909) are not
    verifiable, and the test's rollback takes them away."""
    now = timezone.now()
    first = (now - datetime.timedelta(minutes=STEP_MINUTES * ROWS)).date()
    assert not partitions.ensure(partitions.months_between(first, now.date())).refused
    system = context.ensure_system_user().pk
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO payment_audits (id, user_id, action_type, object_type, object_id,
                before_state, after_state, ip_address, device_id, request_id, created_at,
                chain, seq, prev_hash, row_hash)
            SELECT gen_random_uuid(),
                   CASE WHEN i %% 997 = 0 THEN %(rare)s ELSE %(system)s END,
                   CASE WHEN i %% 1000 = 0 THEN 'security.user.create'
                        WHEN i %% 2 = 0 THEN 'api.payment.update'
                        ELSE 'task.refund.update' END,
                   'payments.payment', i::text, NULL, '{"amount": 1}'::jsonb,
                   ('10.0.' || (i %% 250) || '.1')::inet, 'dev-' || (i %% 3000), '',
                   now() - i * %(step)s * interval '1 minute',
                   900 + i %% 10, i, repeat('0', 64), repeat('0', 64)
            FROM generate_series(1, %(rows)s) AS i
            """,
            {"rare": rare_user.pk, "system": system, "rows": ROWS, "step": STEP_MINUTES},
        )
        # What autovacuum does in production; a plain ANALYZE leaves the trigram indexes'
        # pending lists, which the planner rightly finds costly to read.
        cursor.execute(
            "SELECT gin_clean_pending_list(c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            ["payment_audit_action_trgm"],
        )
        cursor.execute("ANALYZE payment_audits")


def _plan(**filters: Any) -> str:
    # The search screen's page: the first 50 rows (and one more), newest first.
    return selectors.audit_search(**filters)[:51].explain()


def _sizes() -> dict[str, int]:
    return {p.name: p.estimated_rows for p in partitions.attached()}


def _read_whole(plan: str, sizes: dict[str, int]) -> list[str]:
    """The tables of real size the plan reads sequentially (the plain table, or a partition)."""
    scanned = re.findall(r"Seq Scan on (payment_audits\w*)", plan)
    return [table for table in scanned if sizes.get(table, ROWS) >= REAL_SIZE]


def _read_tables(plan: str) -> set[str]:
    return set(re.findall(r" on (payment_audits\w*)", plan))


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"device_id": "dev-42"}, "payment_audit_device_idx"),
        ({"action": "security.user"}, "payment_audit_action_trgm"),
        ({"action": "user.cre"}, "payment_audit_action_trgm"),
        ({"ip_address": "10.0.7.1"}, "payment_audit_ip_idx"),
        ({"object_type": "payments.payment", "object_id": "1234"}, "payment_audit_object_idx"),
        # its FK index or (user, date), bounded by the end of the current month
        ({"actor": "rare-actor"}, "Index Cond: ((user_id ="),
        ({"date_from": "D-40", "date_to": "D-40"}, "payment_audit_created_idx"),
        ({}, "payment_audit_created_idx"),
    ],
    ids=["device", "action-prefix", "action-contains", "ip", "object", "actor", "dates", "none"],
)
def test_every_search_filter_uses_an_index(filters: dict[str, Any], index: str) -> None:
    _fill_postgresql(User.objects.create(username="rare-actor"))
    today = timezone.localdate()
    filters = {
        name: today - datetime.timedelta(days=int(value[2:]))
        if isinstance(value, str) and value.startswith("D-")
        else value
        for name, value in filters.items()
    }
    sizes = _sizes()
    assert sum(1 for rows in sizes.values() if rows >= REAL_SIZE) >= 2, sizes
    plan = _plan(**filters)
    assert not _read_whole(plan, sizes), plan
    # The paginator's capped count over the same filter does not scan a real partition either.
    counted = selectors.audit_search(**filters).order_by()[:10_001].explain()
    assert not _read_whole(counted, sizes) or not filters, counted
    # The page may walk the date index and filter (the planner's choice when matches are many
    # enough); then its count uses the filter's own index.
    assert index in plan or index in counted, plan + counted


@pytest.mark.postgres
def test_a_date_range_reads_only_its_month_s_partition() -> None:
    _fill_postgresql(User.objects.create(username="rare-actor"))
    day = timezone.localdate() - datetime.timedelta(days=40)
    for search in (selectors.audit_search(date_from=day, date_to=day), _one_day_count(day)):
        assert _read_tables(search.explain()) == {partitions.partition_name(day)}


def _one_day_count(day: datetime.date) -> Any:
    return selectors.audit_search(date_from=day, date_to=day).order_by()[:10_001]


@pytest.mark.postgres
def test_a_row_looked_up_with_its_created_at_reads_one_partition() -> None:
    _fill_postgresql(User.objects.create(username="rare-actor"))
    row = PaymentAudit.objects.filter(chain__gte=900).order_by("created_at")[:1].get()
    found = PaymentAudit.objects.filter(pk=row.pk, created_at=row.created_at)
    assert _read_tables(found.explain()) == {partitions.partition_name(row.created_at)}
    assert found.get() == row


def test_a_date_range_is_compared_on_the_column_without_a_cast() -> None:
    day = datetime.date(2026, 3, 14)
    sql = str(selectors.audit_search(date_from=day, date_to=day).query).lower()
    assert "created_at" in sql
    assert "::date" not in sql and "cast" not in sql and "django_datetime" not in sql


def test_a_date_range_includes_the_whole_last_day_and_nothing_after() -> None:
    with context.bind(source="web"):
        PaymentFactory()
    rows = set(PaymentAudit.objects.all())
    day = timezone.localtime(max(row.created_at for row in rows)).date()
    assert set(selectors.audit_search(date_from=day, date_to=day)) == rows
    assert not selectors.audit_search(date_to=day - datetime.timedelta(days=1)).exists()
    assert not selectors.audit_search(date_from=day + datetime.timedelta(days=1)).exists()


@pytest.mark.parametrize(
    "columns",
    [["device_id", "created_at"], ["created_at"], ["object_type", "object_id", "created_at"]],
)
def test_the_search_indexes_exist(columns: list[str]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "payment_audits")
    assert any(c["index"] and c["columns"] == columns for c in constraints.values())
