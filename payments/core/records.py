"""Creating a row the way every service does: validated by the model's own rules first."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, TypeVar

from django.db import models

Record = TypeVar("Record", bound=models.Model)


def create_valid(record: Record, *, exclude: Collection[str] | None = None) -> Record:
    """Save a new row after full_clean(): a bad value is a ValidationError naming the field,
    never a database error halfway through a transaction. `exclude`: fields the caller has
    checked already (a foreign key to a row it holds locked)."""
    record.full_clean(exclude=exclude)
    record.save()
    return record


def check_keywords(keywords: Mapping[str, object], declared: Any) -> None:
    """Refuse keywords as a signature would: one the TypedDict `declared` does not name, or a
    required one left out. A service taking `**fields: Unpack[...]` passes them on to a model,
    which would take any of its fields (a status, say): mypy alone does not keep them out.
    (Optional keys: a `total=False` class; `NotRequired` under postponed annotations is not
    seen at run time before Python 3.12.)"""
    unknown = set(keywords) - declared.__required_keys__ - declared.__optional_keys__
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")
    missing = declared.__required_keys__ - set(keywords)
    if missing:
        raise TypeError(f"missing keyword arguments: {sorted(missing)}")


def attributes(source: object, names: Iterable[str]) -> dict[str, Any]:
    """The named attributes of `source` (not copied): the keyword arguments for a row that
    stores what a value of another kind carries under the same names."""
    return {name: getattr(source, name) for name in names}
