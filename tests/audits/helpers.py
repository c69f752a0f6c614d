"""What an attacker with the database superuser's powers could do, for the tamper tests."""

from __future__ import annotations

from django.db import connection

from audits import triggers


def with_triggers_lifted(sql: str, params: list[object] | None = None) -> None:
    """Run `sql` on the audit tables with the append-only triggers out of the way, as only the
    tables' owner or a superuser can (the triggers survive session_replication_role)."""
    vendor = connection.vendor
    if vendor == "postgresql":
        # ALTER TABLE waits for no deferred foreign-key checks of this test's transaction.
        triggers.execute(connection, ["SET CONSTRAINTS ALL IMMEDIATE"])
    triggers.execute(connection, triggers.uninstall_sql(vendor))
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params or [])
    finally:
        triggers.execute(connection, triggers.install_sql(vendor))
