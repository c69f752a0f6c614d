"""Reads from the replica, for the screens and exports that only read.

Off unless DATABASE_REPLICA_URL is set. Nothing goes to the replica by default: a view opts in
with `@replica_reads`, and only for the apps' own tables (payments, kyc, audits), never for
sessions, users or permissions, which sign-in has just written and a lagging replica may not
have yet. Writes always go to "default", as do reads inside a transaction on it.

The views that opt in (README "Deployment", read replica): the payments search and its CSV
export, the audit search, its CSV and evidence exports, and the overview.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import connections, models

REPLICA_APPS = frozenset({"payments", "kyc", "audits"})

_reading_replica: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "reading_replica", default=False
)

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def replica() -> Iterator[None]:
    """Within this block the apps' reads go to the replica (when one is configured)."""
    token = _reading_replica.set(True)
    try:
        yield
    finally:
        _reading_replica.reset(token)


def replica_reads(view: Callable[P, R]) -> Callable[P, R]:
    """The view's reads of the apps' tables go to the replica. A streamed response keeps
    reading after the view returns, so its iterator is wrapped too (see `on_replica`)."""

    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        with replica():
            response = view(*args, **kwargs)
        streaming = getattr(response, "streaming_content", None)
        if streaming is not None:
            response.streaming_content = on_replica(streaming)  # type: ignore[attr-defined]
        return response

    return wrapped


def on_replica(iterable: Any) -> Iterator[Any]:
    """Iterate with the replica context set only around each step, never across a yield."""
    iterator = iter(iterable)
    while True:
        with replica():
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


def replica_alias() -> str | None:
    alias: str = getattr(settings, "DATABASE_REPLICA_ALIAS", "")
    if alias and alias in connections.settings:
        return alias
    return None


class ReplicaRouter:
    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        if not _reading_replica.get() or model._meta.app_label not in REPLICA_APPS:
            return None
        alias = replica_alias()
        if alias is None or connections["default"].in_atomic_block:
            return None
        return alias

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return "default"

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool | None:
        # The replica is a copy of default: an object read from either may point at the other.
        alias = replica_alias()
        databases = {"default", alias} if alias else {"default"}
        if obj1._state.db in databases and obj2._state.db in databases:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # The replica receives the schema by replication, never by migrate.
        if db != "default" and db == replica_alias():
            return False
        return None
