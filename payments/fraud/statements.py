"""Running scoring's two statements as prepared statements on PostgreSQL.

Planning is most of what a scoring statement costs: a window is an index range scan of a few
rows, but parsing and planning the statement that reads every window takes several times as
long. A statement prepared once per connection is planned once; PostgreSQL switches it to its
generic plan after a few executions (the partial indexes stay usable because each window
states the index's predicate, see checks.window_sql). Django's cursors bind parameters on
the client, which rules this out, so these statements use a server-side binding cursor on the
same connection, wrapped as Django wraps its own (query logging, error translation).

psycopg prepares only while the connection's `prepare_threshold` is set (Django leaves it
unset); set here to prepare on first use. Django's own cursors never prepare, so nothing else
changes. Behind a pooler in transaction mode (DISABLE_SERVER_SIDE_CURSORS) a statement
prepared on one server connection is unknown on the next: there, and off PostgreSQL, the
statements run unprepared.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.backends.utils import CursorDebugWrapper

# Prepare a statement the first time it runs on a connection.
_PREPARE_AT_FIRST_USE = 0


def _prepares() -> bool:
    return connection.vendor == "postgresql" and not connection.settings_dict.get(
        "DISABLE_SERVER_SIDE_CURSORS"
    )


def _int8(value: Any) -> Any:
    """Python ints as bigint: psycopg otherwise types each by its size (smallint, integer),
    and each typing is another prepared statement to plan."""
    from psycopg.types.numeric import Int8

    return Int8(value) if type(value) is int else value


class _LoggedAsWritten(CursorDebugWrapper):
    """Django's query log, with the statement as written: Django reads the executed text back
    from the driver, which keeps none for a prepared statement."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.debug_sql(sql, params):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


def fetch_one(sql: str, params: list[Any]) -> tuple[Any, ...]:
    """The first row of `sql` run with `params` (%s placeholders)."""
    if not _prepares():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return tuple(cursor.fetchone())
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        raw.prepare_threshold = _PREPARE_AT_FIRST_USE
    # django-stubs type the argument as Django's wrapper; Django passes the driver's cursor
    bound: Any = psycopg.Cursor(raw)
    wrapped = (
        _LoggedAsWritten(bound, connection)
        if connection.queries_logged
        else connection.make_cursor(bound)
    )
    with wrapped as cursor:
        cursor.execute(sql, [_int8(value) for value in params])
        return tuple(cursor.fetchone())
