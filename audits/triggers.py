"""Database triggers that make the audit tables append-only.

PostgreSQL: UPDATE, DELETE (per row) and TRUNCATE (per statement) raise, on a partitioned
table's every partition too (audits/partitions.py). The triggers are
ENABLE ALWAYS, so `SET session_replication_role = replica` (which silences ordinary triggers
for replication tools) does not switch them off; only the table's owner or a superuser can
drop or disable them, and such a change to a row is caught by verify_audit_chain.
SQLite: UPDATE and DELETE raise (SQLite has no TRUNCATE).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.backends.base.base import BaseDatabaseWrapper

# The trails (0002_append_only_triggers) and the signed checkpoints (0006_audit_trail_at_scale).
TRAIL_TABLES = ("payment_audits", "auditlog_logentry")
CHECKPOINT_TABLES = ("payment_audit_checkpoints",)
# The record of partitions detached to cold storage (0009_partitioned_trail).
DETACHMENT_TABLES = ("payment_audit_detachments",)
AUDIT_TABLES = TRAIL_TABLES + CHECKPOINT_TABLES + DETACHMENT_TABLES

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_rows_are_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit rows are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
"""


# A partitioned table (payment_audits, audits/partitions.py): PostgreSQL clones the row trigger
# to every partition, not the TRUNCATE one, so each partition gets its own
# `<partition>_no_truncate`.
# A plain table has no partitions: these loop over nothing.
_PG_PARTITIONS_INSTALL = """
DO $$
DECLARE part text;
BEGIN
    FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = '{table}'::regclass LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION audit_rows_are_append_only()',
                       part || '_no_truncate', part);
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', part, part || '_no_truncate');
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', part, '{table}_append_only');
    END LOOP;
END
$$;
"""
_PG_PARTITIONS_UNINSTALL = """
DO $$
DECLARE part text;
BEGIN
    FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = to_regclass('{table}') LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', part || '_no_truncate', part);
    END LOOP;
END
$$;
"""


def _pg_install(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION audit_rows_are_append_only();",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION audit_rows_are_append_only();",
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_append_only;",
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate;",
        _PG_PARTITIONS_INSTALL.format(table=table),
    ]


def _sqlite_install(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'audit rows are append-only: {op} on {table} is refused'); END;"
        for op in ("UPDATE", "DELETE")
    ]


def install_sql(vendor: str, tables: Sequence[str] = AUDIT_TABLES) -> list[str]:
    if vendor == "postgresql":
        return [_PG_FUNCTION] + [sql for table in tables for sql in _pg_install(table)]
    if vendor == "sqlite":
        return [sql for table in tables for sql in _sqlite_install(table)]
    raise NotImplementedError(f"append-only audit tables are not implemented for {vendor}")


def uninstall_sql(vendor: str, tables: Sequence[str] = AUDIT_TABLES) -> list[str]:
    """Drop the triggers of `tables`; the shared function goes only with all of them."""
    if vendor == "postgresql":
        function = (
            ["DROP FUNCTION IF EXISTS audit_rows_are_append_only();"]
            if set(tables) >= set(TRAIL_TABLES)
            else []
        )
        return [
            sql
            for table in tables
            for sql in [
                _PG_PARTITIONS_UNINSTALL.format(table=table),
                f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};",
                f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};",
            ]
        ] + function
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_{op};"
        for table in tables
        for op in ("update", "delete")
    ]


def execute(connection: BaseDatabaseWrapper, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
