"""The audit trail as people read it: names instead of ids, labelled statuses, money with its
currency, never "None", oldest first.

Both trails store values as the database holds them (a status code, a user's id, an amount in
minor units). Timelines turn a before/after diff into lines with the model's own field labels
and choices; the model comes from the row's object type (the apps registry), so `audits` needs
no import of the apps it records. Names are looked up in one query per related model for a
whole timeline, not one per row.

Money: an integer field whose help text says "minor units" is an amount, in the currency the
row carries (`currency`) or the one the caller names (a refund's is its payment's). It is
formatted by settings.AUDIT_MONEY_FORMAT (a dotted path to `format(amount, currency) -> str`).
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from auditlog.models import LogEntry
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.module_loading import import_string

from .crypto.reveal import reveal_changes, reveal_state
from .models import PaymentAudit

NOBODY = "nobody"
EMPTY = "none"
# Bookkeeping every row has; a timeline line about it says nothing to a person.
QUIET_FIELDS = frozenset({"id", "created_at", "updated_at", "gateway_event_at", "row_hash"})
ACTIONS = {"create": "created", "update": "changed", "delete": "deleted", "access": "viewed"}
LONG_TEXT = 120


@dataclass(frozen=True)
class ChangeLine:
    """One field's change: `before` is None when the record was created (only the new value)."""

    label: str
    after: str
    before: str | None = None

    def __str__(self) -> str:
        if self.before is None:
            return f"{self.label}: {self.after}"
        return f"{self.label}: {self.before} → {self.after}"


@dataclass
class TimelineEntry:
    """One change as a timeline shows it."""

    when: datetime.datetime
    who: str
    what: str
    changes: list[ChangeLine] = field(default_factory=list)
    ip_address: str = ""
    device_id: str = ""
    detail: str = ""
    code: str = ""  # the trail's own name for the action (source.model.action), for auditors


def person(user: Any) -> str:
    """A user as people know them: full name, else username; "system" for no user."""
    if user is None:
        return "system"
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return full or user.get_username()


@cache
def _money_formatter() -> Callable[[int, str], str]:
    path = getattr(settings, "AUDIT_MONEY_FORMAT", "")
    if path:
        formatter: Callable[[int, str], str] = import_string(path)
        return formatter
    return lambda amount, currency: f"{amount} minor units of {currency}".strip()


def model_for(object_type: str) -> type[models.Model] | None:
    try:
        return apps.get_model(object_type)
    except (LookupError, ValueError):
        return None


def _field(model: type[models.Model], key: str) -> models.Field[Any, Any] | None:
    """The model field a stored key names: a field name (change log) or an attname
    (payment_audits keeps `assignee_id`)."""
    for candidate in model._meta.concrete_fields:
        if key in (candidate.name, candidate.attname):
            return candidate
    return None


def _is_money(f: models.Field[Any, Any]) -> bool:
    return isinstance(f, models.IntegerField) and "minor units" in str(f.help_text)


def _is_user(f: models.Field[Any, Any]) -> bool:
    return f.is_relation and f.related_model is get_user_model()


class Names:
    """Related rows named in a set of diffs, fetched in one query per related model."""

    def __init__(self) -> None:
        self._wanted: dict[type[models.Model], set[Any]] = defaultdict(set)
        self._found: dict[type[models.Model], dict[Any, str]] = {}

    def want(self, f: models.Field[Any, Any], value: Any) -> None:
        if f.is_relation and f.related_model is not None and value not in (None, ""):
            self._wanted[f.related_model].add(value)

    def name(self, f: models.Field[Any, Any], value: Any) -> str:
        if value in (None, ""):
            return NOBODY if _is_user(f) else EMPTY
        related: type[models.Model] = f.related_model  # type: ignore[assignment]
        if related not in self._found:
            self._load(related)
        found = self._found[related].get(str(value))
        if found is None:
            return f"{related._meta.verbose_name} {value} (not found)"
        return found

    def _load(self, related: type[models.Model]) -> None:
        ids = [
            pk
            for pk in (self._to_pk(related, v) for v in self._wanted.get(related, ()))
            if pk is not None
        ]
        rows = related._default_manager.filter(pk__in=ids) if ids else []
        user_model = get_user_model()
        self._found[related] = {
            str(row.pk): person(row) if related is user_model else str(row) for row in rows
        }

    @staticmethod
    def _to_pk(related: type[models.Model], value: Any) -> Any:
        try:
            return related._meta.pk.to_python(value)
        except (ValidationError, ValueError, TypeError):  # a stored value that is no key
            return None


def _currency(
    state: Mapping[str, Any] | None, other: Mapping[str, Any] | None, default: str
) -> str:
    for candidate in (state, other):
        if candidate and isinstance(candidate.get("currency"), str) and candidate["currency"]:
            return str(candidate["currency"])
    return default


def _value(f: models.Field[Any, Any], value: Any, *, names: Names, currency: str) -> str:
    if f.is_relation:
        return names.name(f, value)
    if value is None or value == "":
        return EMPTY
    if f.choices:
        labels = {str(k): str(v) for k, v in f.flatchoices}
        return labels.get(str(value), str(value))
    if isinstance(value, bool) or isinstance(f, models.BooleanField):
        return "yes" if value in (True, "True", "true", 1) else "no"
    if _is_money(f):
        try:
            return _money_formatter()(int(value), currency) if currency else f"{int(value):,}"
        except (TypeError, ValueError):
            return str(value)
    if isinstance(f, models.DateTimeField) and isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            return value
        return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, dict | list):
        return "changed"
    text = str(value)
    return text if len(text) <= LONG_TEXT else text[: LONG_TEXT - 1] + "…"


def _diff(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[tuple[str, Any, Any]]:
    keys = list(dict.fromkeys([*(after or {}), *(before or {})]))
    return [
        (key, (before or {}).get(key), (after or {}).get(key))
        for key in keys
        if (before or {}).get(key) != (after or {}).get(key)
    ]


def _shown(f: models.Field[Any, Any], created: bool, new: Any) -> bool:
    if f.name in QUIET_FIELDS or f.primary_key:
        return False
    if created:
        # A new record: what it is (statuses, kinds, amounts, who), not every empty column.
        return new not in (None, "") and bool(f.choices or _is_money(f) or f.is_relation)
    return True


def change_lines(
    model: type[models.Model] | None,
    diff: list[tuple[str, Any, Any]],
    *,
    created: bool,
    names: Names,
    currency: str = "",
) -> list[ChangeLine]:
    """Readable lines for one diff of `model` ((key, before, after) triples). `names` must have
    seen the diff (Names.want) before; a deleted record has no lines (its action says it)."""
    if model is None:
        return [
            ChangeLine(label=k, before=None if created else str(b), after=str(a))
            for k, b, a in diff
        ]
    lines = []
    for key, old, new in diff:
        f = _field(model, key)
        if f is None or not _shown(f, created, new):
            continue
        label = str(f.verbose_name)
        label = label[:1].upper() + label[1:]
        after = _value(f, new, names=names, currency=currency)
        before = None if created else _value(f, old, names=names, currency=currency)
        lines.append(ChangeLine(label=label, before=before, after=after))
    return lines


def _want_all(
    names: Names, model: type[models.Model] | None, diff: Iterable[tuple[str, Any, Any]]
) -> None:
    if model is None:
        return
    for key, old, new in diff:
        f = _field(model, key)
        if f is not None:
            names.want(f, old)
            names.want(f, new)


def _what(model: type[models.Model] | None, object_type: str, object_id: str, action: str) -> str:
    noun = str(model._meta.verbose_name).capitalize() if model else object_type
    return f"{noun} {object_id} {ACTIONS.get(action, action)}"


def audit_row_order(row: PaymentAudit) -> tuple[datetime.datetime, str]:
    return (row.created_at, str(row.pk))


def currency_of(object_type: str, object_id: str) -> str:
    """The currency of a recorded object, for its amounts: its own `currency`, else that of
    the record it belongs to through a `payment` relation (a refund's is its payment's)."""
    model = model_for(object_type)
    if model is None:
        return ""
    try:
        instance = model._default_manager.filter(pk=object_id).first()
    except (ValueError, TypeError, ValidationError):
        return ""
    for holder in (instance, getattr(instance, "payment", None)):
        code = getattr(holder, "currency", "")
        if isinstance(code, str) and code:
            return code
    return ""


def audit_rows_readable(rows: Iterable[PaymentAudit], *, currency: str = "") -> list[TimelineEntry]:
    """payment_audits rows as timeline entries, oldest first."""
    rows = sorted(rows, key=audit_row_order)
    names = Names()
    prepared = []
    for row in rows:
        model = model_for(row.object_type)
        diff = _diff(
            reveal_state(row.object_type, row.before_state),
            reveal_state(row.object_type, row.after_state),
        )
        _want_all(names, model, diff)
        prepared.append((row, model, diff))
    entries = []
    for row, model, diff in prepared:
        action = row.action_type.rsplit(".", 1)[-1]
        created = row.before_state is None
        lines = (
            []
            if row.after_state is None
            else change_lines(
                model,
                diff,
                created=created,
                names=names,
                currency=_currency(row.after_state, row.before_state, currency),
            )
        )
        entries.append(
            TimelineEntry(
                when=row.created_at,
                who=person(row.user),
                what=_what(model, row.object_type, row.object_id, action),
                changes=lines,
                ip_address=row.ip_address or "",
                device_id=row.device_id or "",
                code=row.action_type,
            )
        )
    return entries


def _log_diff(entry: LogEntry) -> list[tuple[str, Any, Any]]:
    changes = entry.changes if isinstance(entry.changes, dict) else {}
    if entry.content_type_id:
        kind = entry.content_type
        changes = reveal_changes(f"{kind.app_label}.{kind.model}", changes)
    return [
        (key, pair[0], pair[1])
        for key, pair in changes.items()
        if isinstance(pair, list | tuple) and len(pair) == 2
    ]


def log_entries_readable(
    entries: Iterable[LogEntry], *, currency: str = "", fields: Iterable[str] | None = None
) -> list[TimelineEntry]:
    """Change-log entries as timeline entries, oldest first. `fields` keeps only those fields'
    lines (a case's timeline shows its workflow, not every column)."""
    entries = sorted(entries, key=lambda e: (e.timestamp, e.pk))
    keep = frozenset(fields) if fields is not None else None
    names = Names()
    prepared = []
    for entry in entries:
        model = entry.content_type.model_class() if entry.content_type_id else None
        diff = [d for d in _log_diff(entry) if keep is None or d[0] in keep]
        _want_all(names, model, diff)
        prepared.append((entry, model, diff))
    result = []
    for entry, model, diff in prepared:
        action = {
            LogEntry.Action.CREATE: "create",
            LogEntry.Action.UPDATE: "update",
            LogEntry.Action.DELETE: "delete",
        }.get(entry.action, "access")
        states = {k: a for k, _, a in _log_diff(entry)}
        lines = (
            []
            if action == "delete"
            else change_lines(
                model,
                diff,
                created=action == "create",
                names=names,
                currency=_currency(states, None, currency),
            )
        )
        extra = entry.additional_data if isinstance(entry.additional_data, dict) else {}
        result.append(
            TimelineEntry(
                when=entry.timestamp,
                who=person(entry.actor),
                what=_what(model, entry.content_type.model, entry.object_pk, action),
                changes=lines,
                ip_address=entry.remote_addr or "",
                detail=str(extra.get("access", "")),
            )
        )
    return result
