"""Creating a row the way every service does: validated by the model's own rules first."""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

from django.db import models

Record = TypeVar("Record", bound=models.Model)


def create_valid(record: Record, *, exclude: Collection[str] | None = None) -> Record:
    """Save a new row after full_clean(): a bad value is a ValidationError naming the field,
    never a database error halfway through a transaction. `exclude`: fields the caller has
    checked already (a foreign key to a row it holds locked)."""
    record.full_clean(exclude=exclude)
    record.save()
    return record
