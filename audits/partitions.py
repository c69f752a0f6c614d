"""payment_audits partitioned by month (PostgreSQL declarative partitioning).

One partition per UTC month, `payment_audits_y2026m12`, created ahead of time (migrate, the
`audit_partitions --ensure` command and beat's daily `audit-partitions-ensure`), and a DEFAULT
partition, `payment_audits_default`, that catches a row no month partition was made for (the
command and /metrics report its rows). Indexes are partitioned indexes: each partition gets
every one. The row trigger refusing UPDATE and DELETE is cloned by PostgreSQL to every
partition; the statement trigger refusing TRUNCATE is not, so each partition gets its own here.

The database primary key is (id, created_at) and the chain position is unique per (chain, seq,
created_at): PostgreSQL only enforces uniqueness that includes the partition key. Django keeps
`id` as its primary key (uuid4). A chain's (chain, seq) stays unique because appending moves the
chain's head row under a lock; verify_audit_chain reports a duplicated or missing position.

SQLite keeps a plain table: everything here is a no-op there.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from . import triggers

TABLE = "payment_audits"
DEFAULT = f"{TABLE}_default"
MONTHS_AHEAD = 3


class PartitionError(Exception):
    """A partition operation refused: the message says why; nothing was changed."""


def is_partitioned(conn: BaseDatabaseWrapper = connection) -> bool:
    if conn.vendor != "postgresql":
        return False
    with conn.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [TABLE])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def month_start(value: datetime.date | datetime.datetime) -> datetime.date:
    return datetime.date(value.year, value.month, 1)


def month_add(month: datetime.date, months: int) -> datetime.date:
    index = month.year * 12 + month.month - 1 + months
    return datetime.date(index // 12, index % 12 + 1, 1)


def parse_month(value: str) -> datetime.date:
    """'2026-01' -> 2026-01-01. Raises PartitionError for anything else."""
    try:
        parsed = datetime.datetime.strptime(value, "%Y-%m")
    except ValueError as exc:
        raise PartitionError(f"'{value}' is not a month (YYYY-MM)") from exc
    return parsed.date()


def partition_name(month: datetime.date) -> str:
    return f"{TABLE}_y{month.year:04d}m{month.month:02d}"


def bounds(month: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """The month's range in UTC: [first instant, first instant of the next month)."""

    def instant(day: datetime.date) -> datetime.datetime:
        return datetime.datetime(day.year, day.month, 1, tzinfo=datetime.UTC)

    return instant(month), instant(month_add(month, 1))


def truncate_trigger_sql(partition: str) -> list[str]:
    """The TRUNCATE trigger a partition needs (PostgreSQL clones row triggers only), and the
    cloned row trigger set ENABLE ALWAYS like the parent's."""
    return [
        f"CREATE TRIGGER {partition}_no_truncate BEFORE TRUNCATE ON {partition} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION audit_rows_are_append_only();",
        f"ALTER TABLE {partition} ENABLE ALWAYS TRIGGER {partition}_no_truncate;",
        f"ALTER TABLE {partition} ENABLE ALWAYS TRIGGER {TABLE}_append_only;",
    ]


# PostgreSQL names a partition's copy of each index after its columns; this names it after the
# parent's index instead (payment_audit_device_idx_y2026m12), so query plans read the same.
INDEX_NAMES_SQL = f"""
DO $$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT child.relname AS child,
               parent.relname || '_' || substr(part.relname, {len(TABLE) + 2}) AS wanted
        FROM pg_inherits parts
        JOIN pg_class part ON part.oid = parts.inhrelid
        JOIN pg_index ix ON ix.indrelid = part.oid
        JOIN pg_class child ON child.oid = ix.indexrelid
        JOIN pg_inherits ixs ON ixs.inhrelid = child.oid
        JOIN pg_class parent ON parent.oid = ixs.inhparent
        WHERE parts.inhparent = '{TABLE}'::regclass
    LOOP
        IF r.child <> r.wanted THEN
            EXECUTE format('ALTER INDEX %I RENAME TO %I', r.child, r.wanted);
        END IF;
    END LOOP;
END
$$;
"""  # noqa: S608  # nosec B608 (constant names)


@dataclass(frozen=True)
class Partition:
    name: str
    month: datetime.date | None  # None for DEFAULT
    estimated_rows: int


def attached(conn: BaseDatabaseWrapper = connection) -> list[Partition]:
    """The partitions attached now, oldest month first, DEFAULT last (estimated row counts:
    pg_class.reltuples, -1 before the first ANALYZE)."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples::bigint FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = %s ORDER BY c.relname",
            [TABLE],
        )
        rows = cursor.fetchall()
    found = []
    for name, estimate in rows:
        month = None
        if name != DEFAULT:
            month = datetime.date(int(name[-7:-3]), int(name[-2:]), 1)
        found.append(Partition(name, month, max(int(estimate), -1)))
    return sorted(found, key=lambda p: (p.month is None, p.month or datetime.date.min))


def create_sql(month: datetime.date, *, with_triggers: bool = True) -> list[str]:
    low, high = bounds(month)
    name = partition_name(month)
    create = (
        f"CREATE TABLE {name} PARTITION OF {TABLE} "
        f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}');"
    )
    return [create, *(truncate_trigger_sql(name) if with_triggers else []), INDEX_NAMES_SQL]


def default_sql(*, with_triggers: bool = True) -> list[str]:
    create = f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT;"
    return [create, *(truncate_trigger_sql(DEFAULT) if with_triggers else []), INDEX_NAMES_SQL]


def months_between(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    months, month = [], month_start(first)
    while month <= last:
        months.append(month)
        month = month_add(month, 1)
    return months


@dataclass
class EnsureResult:
    created: list[str]
    existing: list[str]
    refused: list[str]  # "name: why" (rows of its month already in DEFAULT)


def ensure(months: Iterable[datetime.date], conn: BaseDatabaseWrapper = connection) -> EnsureResult:
    """Create the month partitions among `months` that do not exist yet, each in its own
    transaction. A month whose rows already sit in DEFAULT cannot get a partition (PostgreSQL
    refuses it): it is reported, not created."""
    result = EnsureResult([], [], [])
    present = {p.name for p in attached(conn)}
    for month in sorted(set(months)):
        name = partition_name(month)
        if name in present:
            result.existing.append(name)
            continue
        try:
            with transaction.atomic(using=conn.alias):
                triggers.execute(conn, create_sql(month))
        except DatabaseError as exc:
            if "default partition" not in str(exc) and "already exists" not in str(exc):
                raise
            result.refused.append(f"{name}: {str(exc).splitlines()[0]}")
            continue
        result.created.append(name)
    return result


def ensure_ahead(
    months_ahead: int = MONTHS_AHEAD,
    *,
    today: datetime.date | None = None,
    conn: BaseDatabaseWrapper = connection,
) -> EnsureResult:
    """The current UTC month and `months_ahead` after it."""
    current = month_start(today or datetime.datetime.now(datetime.UTC).date())
    return ensure([month_add(current, n) for n in range(months_ahead + 1)], conn)


def default_rows(conn: BaseDatabaseWrapper = connection) -> int:
    """Rows in DEFAULT: rows whose month had no partition when they were written."""
    if not is_partitioned(conn):
        return 0
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {DEFAULT}")  # noqa: S608  # nosec B608 (a constant name)
        return int(cursor.fetchone()[0])


def search_upper_bound() -> datetime.datetime:
    """The end of the current UTC month: searches without an end date stop there, so that the
    planner leaves out the (empty) partitions made ahead instead of scanning each. A row dated
    later could only come from a clock weeks ahead; `audit_partitions` lists such partitions."""
    return bounds(month_start(datetime.datetime.now(datetime.UTC).date()))[1]
