"""Creating a row the way every service does: validated by the model's own rules first."""

from __future__ import annotations

from typing import TypeVar

from django.db import models

Record = TypeVar("Record", bound=models.Model)


def create_valid(record: Record) -> Record:
    """Save a new row after full_clean(): a bad value is a ValidationError naming the field,
    never a database error halfway through a transaction."""
    record.full_clean()
    record.save()
    return record
