from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audits.models import PaymentAudit
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db

TABLES = ["payment_audits", "auditlog_logentry"]


def _refused(sql: str) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    except DatabaseError as exc:
        assert "append-only" in str(exc)
        return True
    return False


@pytest.fixture
def audited_rows() -> None:
    PaymentFactory()
    assert PaymentAudit.objects.exists()


def _committed_on_postgres(test: Callable[..., None]) -> Callable[..., None]:
    """PostgreSQL only, in a transactional test: TRUNCATE needs no pending FK checks of it."""
    return pytest.mark.postgres(pytest.mark.django_db(transaction=True)(test))


def _edit(table: str) -> str:
    column = "action_type" if table == "payment_audits" else "object_repr"
    return f"UPDATE {table} SET {column} = 'edited'"


def _assert_refused_leaving_every_row(table: str, *statements: str) -> None:
    count_before = _count(table)
    for statement in statements:
        assert _refused(statement)
    assert _count(table) == count_before


@pytest.mark.parametrize("table", TABLES)
def test_update_and_delete_are_refused_by_the_database(table: str, audited_rows: None) -> None:
    _assert_refused_leaving_every_row(table, _edit(table), f"DELETE FROM {table}")


@_committed_on_postgres
@pytest.mark.parametrize("table", TABLES)
def test_truncate_is_refused_by_the_database(table: str, audited_rows: None) -> None:
    _assert_refused_leaving_every_row(table, f"TRUNCATE {table} CASCADE")


@_committed_on_postgres
@pytest.mark.parametrize("table", TABLES)
def test_replica_mode_does_not_switch_the_triggers_off(table: str, audited_rows: None) -> None:
    statements = (_edit(table), f"DELETE FROM {table}", f"TRUNCATE {table} CASCADE")
    _assert_refused_leaving_every_row(
        table, *(f"SET LOCAL session_replication_role = replica; {s}" for s in statements)
    )


def test_auditlogflush_is_refused(audited_rows: None) -> None:
    with pytest.raises(CommandError, match="append-only"):
        call_command("auditlogflush", "--yes")
    with pytest.raises(CommandError, match="append-only"):
        call_command("auditlogflush", "--yes", "--truncate")
    assert _count("auditlog_logentry") > 0


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        return cursor.fetchone()[0]
