"""Timelines in templates: `{% readable_audit_rows timeline currency=payment.currency as lines %}`
turns a whole timeline into readable entries at once (one name lookup per related model)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template

from ..presenters import TimelineEntry, audit_rows_readable, log_entries_readable, person

register = template.Library()


@register.simple_tag
def readable_audit_rows(rows: Iterable[Any], currency: str = "") -> list[TimelineEntry]:
    return audit_rows_readable(rows or [], currency=currency or "")


@register.simple_tag
def readable_log_entries(
    entries: Iterable[Any], currency: str = "", fields: str = ""
) -> list[TimelineEntry]:
    """`fields`: comma-separated field names to keep (all when empty)."""
    keep = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    return log_entries_readable(entries or [], currency=currency or "", fields=keep)


@register.filter(name="person")
def person_filter(user: Any) -> str:
    """A user by full name, else username ("system" for none)."""
    return person(user)
