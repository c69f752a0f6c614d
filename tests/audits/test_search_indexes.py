"""The audit search uses an index for every filter it offers (issue 14, point 4): date ranges
without casts, device, actor, IP, object, and "action contains" by trigram on PostgreSQL."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from audits import context, selectors
from audits.models import PaymentAudit
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db

ROWS = 30_000


def _fill_postgresql(rare_user: User) -> None:
    """ROWS rows straight into the table, spread over 200 days, 3,000 devices and 250 client
    addresses; one action in a thousand is rare, and so is one actor. Test data only: their
    chains (900-909) are not verifiable, and the test's rollback takes them away."""
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
                   now() - i * interval '10 minutes',
                   900 + i %% 10, i, repeat('0', 64), repeat('0', 64)
            FROM generate_series(1, %(rows)s) AS i
            """,
            {"rare": rare_user.pk, "system": system, "rows": ROWS},
        )
        cursor.execute("ANALYZE payment_audits")


def _plan(**filters: Any) -> str:
    # The search screen's page: the first 50 rows (and one more), newest first.
    return selectors.audit_search(**filters)[:51].explain()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"device_id": "dev-42"}, "payment_audit_device_idx"),
        ({"action": "security.user"}, "payment_audit_action_trgm"),
        ({"action": "user.cre"}, "payment_audit_action_trgm"),
        ({"ip_address": "10.0.7.1"}, "payment_audit_ip_idx"),
        ({"object_type": "payments.payment", "object_id": "1234"}, "payment_audit_object_idx"),
        ({"actor": "rare-actor"}, "Index Cond: (user_id ="),  # its FK index or (user, date)
        ({"date_from": "D-100", "date_to": "D-100"}, "payment_audit_created_idx"),
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
    plan = _plan(**filters)
    assert "Seq Scan on payment_audits" not in plan, plan
    assert index in plan, plan
    # The paginator's capped count over the same filter does not scan the table either.
    counted = selectors.audit_search(**filters).order_by()[:10_001].explain()
    assert "Seq Scan on payment_audits" not in counted or not filters, counted


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
