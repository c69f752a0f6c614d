"""Search forms' filters, applied the one way every screen does; long reads streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from django.db import models, transaction
from django.db.models import QuerySet

Row = TypeVar("Row", bound=models.Model)


def narrowed(queryset: QuerySet[Row], **lookups: Any) -> QuerySet[Row]:
    """The queryset filtered by each lookup that has a value: a search form's empty fields
    (None or "") filter nothing."""
    return queryset.filter(**{k: v for k, v in lookups.items() if v is not None and v != ""})


def streamed(queryset: QuerySet[Any], *, chunk_size: int = 2000) -> Iterator[Any]:
    """The rows of `queryset` in constant memory, whatever sits between us and PostgreSQL.

    `.iterator()` reads through a server-side cursor (chunk_size rows at a time). Outside a
    transaction that cursor is WITH HOLD and outlives the statement: behind PgBouncer in
    transaction mode the next fetch may go to another server connection, where it does not
    exist. Inside a transaction the pooler keeps us on one server connection until the end, so
    every iteration holds one for its length (Django's documented remedy; it also reads one
    consistent snapshot). With DISABLE_SERVER_SIDE_CURSORS the driver fetches the whole result
    at once instead: it still works, but the memory is the result set's.
    """
    with transaction.atomic(using=queryset.db):
        yield from queryset.iterator(chunk_size=chunk_size)
