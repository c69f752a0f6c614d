"""Change-log entries for rows that a hot path inserts in SQL of its own.

The receivers (receivers.py) write the django-auditlog entry of a change after Django saved it.
A path that stores a row with one hand-written statement (the webhook inbox's
`INSERT ... ON CONFLICT DO NOTHING`, where a second statement would cost the request a round
trip) writes the same entry in that statement: this module gives it the entry's columns, built
by the same diff and from the same audit context as the receivers'.
"""

from __future__ import annotations

from typing import Any

from auditlog.diff import model_instance_diff
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from . import context

# Filled in by the caller from the row it inserted (its id is not known before).
ROW_COLUMNS = frozenset({"object_pk", "object_id"})

# Where an instance keeps its row as stored, for the receivers' pre_save and post_save.
STORED_BEFORE = "_audit_before"


def create_entry(instance: models.Model) -> LogEntry:
    """The unsaved entry the receivers would write for creating `instance` (its pk may still be
    unset: then the caller adds it to `changes`, `object_pk` and `object_id`)."""
    changes = model_instance_diff(None, instance, use_json_for_changes=True) or {}
    pk = instance.pk
    return LogEntry(
        content_type=ContentType.objects.get_for_model(instance),
        object_pk=str(pk) if pk is not None else "",
        object_id=pk if isinstance(pk, int) else None,
        object_repr=str(instance),
        action=LogEntry.Action.CREATE,
        changes=changes,
        **context_columns(context.current()),
    )


def context_columns(ctx: context.AuditContext) -> dict[str, Any]:
    """An entry's columns that the audit context gives: who acted, from where, through what."""
    actor_id, actor = ctx.resolve_actor()
    extra: dict[str, str | int] = {"source": ctx.source}
    if ctx.detail:
        extra["detail"] = ctx.detail
    if ctx.device_id:
        extra["device_id"] = ctx.device_id
    if ctx.token_id is not None:
        extra["token_id"] = ctx.token_id
    return {
        "actor_id": actor_id,
        "actor_email": getattr(actor, "email", None) or None,
        "remote_addr": ctx.ip_address,
        "additional_data": extra,
        "cid": ctx.request_id or None,
    }


def entry_columns(entry: LogEntry, connection: BaseDatabaseWrapper) -> dict[str, Any]:
    """The entry's columns and their database values, but the id and the row's own columns."""
    values: dict[str, Any] = {}
    for field in entry._meta.concrete_fields:
        if field.primary_key or field.attname in ROW_COLUMNS:
            continue
        value = field.pre_save(entry, add=True)
        values[field.column] = field.get_db_prep_save(value, connection=connection)
    return values


def remember_stored_before(instance: models.Model, before: models.Model) -> None:
    """Give the receivers the row as stored (`before`, a copy of the row the caller has just read
    under its lock), so that the next save of `instance` does not read it again."""
    instance.__dict__[STORED_BEFORE] = before
