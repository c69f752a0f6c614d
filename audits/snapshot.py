"""A model row as JSON-safe data, for before/after states and hashing."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from auditlog.diff import mask_str
from django.db import models
from django.db.models.fields.files import FieldFile

from .crypto.fields import BlindIndexField, EncryptedMixin, envelope_of


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, FieldFile):
        return value.name or None
    if isinstance(value, dict | list):
        return value
    return str(value)


def snapshot_value(field: models.Field[Any, Any], value: Any) -> Any:
    """A field's value as a snapshot records it, before masking."""
    return _json_value(envelope_of(field, value))


def snapshot(
    instance: models.Model,
    *,
    mask_fields: frozenset[str] = frozenset(),
    only: frozenset[str] | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if only is not None and field.name not in only and field.attname not in only:
            continue
        if isinstance(field, BlindIndexField):
            continue  # derived from an encrypted field, and would outlive a person's erasure
        # An encrypted field is recorded as its envelope: already unreadable, nothing to mask.
        value = snapshot_value(field, getattr(instance, field.attname))
        encrypted = isinstance(field, EncryptedMixin)
        if field.name in mask_fields and not encrypted and isinstance(value, str) and value:
            value = mask_str(value)
        state[field.attname] = value
    return state
