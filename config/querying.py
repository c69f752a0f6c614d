"""Search forms' filters, applied the one way every screen does."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.db.models import QuerySet

Row = TypeVar("Row", bound=models.Model)


def narrowed(queryset: QuerySet[Row], **lookups: Any) -> QuerySet[Row]:
    """The queryset filtered by each lookup that has a value: a search form's empty fields
    (None or "") filter nothing."""
    return queryset.filter(**{k: v for k, v in lookups.items() if v is not None and v != ""})
