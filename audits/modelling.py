"""The field and constraint definitions every app's models repeat, written once.

Each helper builds exactly what the models spelled out before (same field options, same
constraint conditions and names), so the migrations see no change. Constraint names stay
written out at each use, as the house style asks: a failing constraint is found by its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

SHA256_HEX = r"^[0-9a-f]{64}$"


class Created(models.Model):
    """When the row was created."""

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class Timestamped(Created):
    """When the row was created and last saved."""

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class AuthoredNote(Created):
    """A person's note on a record. Each note model adds the record it is on, and a
    `not_blank("text", ...)` constraint under its own name."""

    author = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    text = models.TextField()

    class Meta:
        abstract = True


def optional_user(related_name: str = "+", **options: Any) -> models.ForeignKey[Any, Any]:
    """A person a row may name once someone has acted (assigned, decided, closed): empty until
    then, and a user who is named can never be deleted from under the row."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        related_name=related_name,
        **options,
    )


def choice_valid(field: str, choices: type[models.Choices], name: str) -> models.CheckConstraint:
    """The field holds one of its choices (the database refuses any other value)."""
    return models.CheckConstraint(condition=Q(**{f"{field}__in": choices.values}), name=name)


def unique_when_set(fields: Sequence[str], name: str) -> models.UniqueConstraint:
    """The fields are unique together once the last of them, an optional reference, is set."""
    return models.UniqueConstraint(fields=list(fields), condition=~Q(**{fields[-1]: ""}), name=name)


def matches(field: str, pattern: str, name: str) -> models.CheckConstraint:
    """The field matches the regular expression (an ISO code, a digest)."""
    return models.CheckConstraint(condition=Q(**{f"{field}__regex": pattern}), name=name)


def sha256_hex(field: str, name: str) -> models.CheckConstraint:
    """The field is a SHA-256 digest in lower-case hex."""
    return matches(field, SHA256_HEX, name)


def not_blank(field: str, name: str) -> models.CheckConstraint:
    """The field is not the empty string."""
    return models.CheckConstraint(condition=~Q(**{field: ""}), name=name)


def stored_file_checks(*, sha256_name: str, size_name: str) -> list[models.CheckConstraint]:
    """A stored upload's digest is SHA-256 hex and its size is not zero."""
    return [
        sha256_hex("sha256", sha256_name),
        models.CheckConstraint(condition=Q(size__gt=0), name=size_name),
    ]
