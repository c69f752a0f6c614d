from __future__ import annotations

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


@pytest.mark.parametrize("table", TABLES)
def test_update_and_delete_are_refused_by_the_database(table: str, audited_rows: None) -> None:
    count_before = _count(table)
    column = "action_type" if table == "payment_audits" else "object_repr"
    assert _refused(f"UPDATE {table} SET {column} = 'edited'")
    assert _refused(f"DELETE FROM {table}")
    assert _count(table) == count_before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # TRUNCATE needs no pending FK checks of this test
@pytest.mark.parametrize("table", TABLES)
def test_truncate_is_refused_by_the_database(table: str, audited_rows: None) -> None:
    count_before = _count(table)
    assert _refused(f"TRUNCATE {table} CASCADE")
    assert _count(table) == count_before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # TRUNCATE needs no pending FK checks of this test
@pytest.mark.parametrize("table", TABLES)
def test_replica_mode_does_not_switch_the_triggers_off(table: str, audited_rows: None) -> None:
    count_before = _count(table)
    column = "action_type" if table == "payment_audits" else "object_repr"
    for statement in (
        f"UPDATE {table} SET {column} = 'edited'",
        f"DELETE FROM {table}",
        f"TRUNCATE {table} CASCADE",
    ):
        assert _refused(f"SET LOCAL session_replication_role = replica; {statement}")
    assert _count(table) == count_before


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
