"""Signal receivers that write the audit trail. They record; they never decide.

For each save of an audited model: pre_save reads the stored row once (the before-state; a
status machine's save() may have read it already, through `stored_before`), post_save writes
the django-auditlog LogEntry and, for payment records, the payment_audits row, in the
transaction of the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditlog.diff import model_instance_diff
from auditlog.models import DEFAULT_OBJECT_REPR, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist
from django.db import models, transaction
from django.utils import timezone
from django.utils.encoding import smart_str

from . import chain, context
from .crypto.fields import BlindIndexField, EncryptedMixin, envelope_of
from .entries import STORED_BEFORE, context_columns
from .models import PaymentAudit
from .options import options_for
from .snapshot import snapshot, snapshot_value


class AuditOutsideTransaction(Exception):
    pass


def _require_transaction(instance: models.Model) -> None:
    # LogEntry and payment_audits rows must commit or roll back with the change itself.
    if not transaction.get_connection().in_atomic_block:
        raise AuditOutsideTransaction(
            f"{type(instance).__name__} is audited: change it inside transaction.atomic() "
            f"(the services do), so the change and its audit rows commit together."
        )


def stored_before(instance: models.Model) -> models.Model | None:
    """The row as stored, read once per save: the model's own save() (a status machine
    checking its move) and the receiver below share the one read."""
    if STORED_BEFORE not in instance.__dict__:
        before = None
        if not instance._state.adding and instance.pk is not None:
            before = type(instance)._base_manager.filter(pk=instance.pk).first()
        instance.__dict__[STORED_BEFORE] = before
    return instance.__dict__[STORED_BEFORE]


def forget_stored_before(instance: models.Model) -> None:
    instance.__dict__.pop(STORED_BEFORE, None)


def fields_changed(instance: models.Model) -> list[str] | None:
    """The fields a save of `instance` must write, for `save(update_fields=...)`: those whose
    value, or whose audit record (snapshot), differs from the row as stored, plus the auto_now
    fields and the blind index of a changed encrypted field, whose save computes them. Such a
    save writes the same row and the same audit rows as a full one: the receivers' diff and
    after-state then take the unchanged fields from the stored row, which holds exactly those
    values. None (save everything) when the stored row is not known or nothing differs."""
    before = instance.__dict__.get(STORED_BEFORE)
    if before is None or instance._state.adding:
        return None
    changed: list[str] = []
    sources: set[str] = set()
    for field in instance._meta.concrete_fields:
        if field.primary_key or isinstance(field, BlindIndexField):
            continue
        now, was = getattr(instance, field.attname), getattr(before, field.attname)
        # A dict or list may have been changed in place, in the very object the stored
        # row's copy shares: always written.
        if (
            isinstance(now, dict | list)
            or now != was
            or snapshot_value(field, now) != snapshot_value(field, was)
        ):
            changed.append(field.name)
            sources.add(field.name)
    if not changed:
        return None
    for field in instance._meta.concrete_fields:
        if (isinstance(field, BlindIndexField) and field.source in sources) or getattr(
            field, "auto_now", False
        ):
            changed.append(field.name)
    return changed


def before_save(
    sender: type[models.Model], instance: models.Model, update_fields: Any = None, **kwargs: Any
) -> None:
    _require_transaction(instance)
    stored_before(instance)


def after_save(
    sender: type[models.Model],
    instance: models.Model,
    created: bool,
    update_fields: Any = None,
    **kwargs: Any,
) -> None:
    before = instance.__dict__.pop(STORED_BEFORE, None)
    if created or before is None:
        _record(_Change(instance, LogEntry.Action.CREATE, before=None, after=instance))
    else:
        changed = frozenset(update_fields) if update_fields else None
        _record(
            _Change(
                instance,
                LogEntry.Action.UPDATE,
                before=before,
                after=instance,
                changed_fields=changed,
            )
        )


def after_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    _require_transaction(instance)
    _record(_Change(instance, LogEntry.Action.DELETE, before=instance, after=None))


@dataclass(frozen=True, slots=True)
class _Change:
    """One save or delete of an audited model, as the receivers record it."""

    instance: models.Model
    action: int
    before: models.Model | None
    after: models.Model | None
    changed_fields: frozenset[str] | None = None


def _seal_changes(change: _Change, changes: dict[str, Any]) -> None:
    """The diff compares plaintexts (a re-save is no change); the entry keeps envelopes."""
    for field in change.instance._meta.concrete_fields:
        if isinstance(field, EncryptedMixin) and field.name in changes:
            changes[field.name] = [
                None if row is None else envelope_of(field, getattr(row, field.attname))
                for row in (change.before, change.after)
            ]


def _log_fields(change: _Change) -> dict[str, Any] | None:
    """The change-log entry's fields for a change, or None for an update that changed nothing."""
    changes = model_instance_diff(
        change.before,
        change.after,
        fields_to_check=change.changed_fields,
        use_json_for_changes=True,
    )
    if change.action == LogEntry.Action.UPDATE and not changes:
        return None
    _seal_changes(change, changes)
    return {"action": change.action, "changes": changes, **context_columns(context.current())}


def update_entry(
    instance: models.Model, *, before: models.Model, changed_fields: frozenset[str]
) -> LogEntry | None:
    """The unsaved change-log entry after_save would write for saving `instance` (a model
    without payment_audits rows) with `update_fields=changed_fields`; None if nothing changed.
    For a path that writes several such rows in one statement of its own."""
    options = options_for(type(instance))
    if options is not None and options.payment_audit:
        raise ValueError(f"{type(instance).__name__} is written to payment_audits: save it")
    fields = _log_fields(
        _Change(
            instance,
            LogEntry.Action.UPDATE,
            before=before,
            after=instance,
            changed_fields=changed_fields,
        )
    )
    return None if fields is None else _log_entry(instance, **fields)


_ACTION_NAMES = {
    LogEntry.Action.CREATE: "create",
    LogEntry.Action.UPDATE: "update",
    LogEntry.Action.DELETE: "delete",
}


def _record(change: _Change) -> None:
    log_fields = _log_fields(change)
    if log_fields is None:
        return  # a save that changed nothing is not a change
    instance, before, after = change.instance, change.before, change.after
    ctx = context.current()
    actor_id, source = log_fields["actor_id"], ctx.source
    options = options_for(type(instance))
    if options is None or not options.payment_audit:
        LogEntry.objects.log_create(instance, **log_fields)
        return
    masked = options.mask_fields
    before_state = snapshot(before, mask_fields=masked) if before is not None else None
    after_state = None
    if after is not None:
        if before_state is not None and change.changed_fields is not None:
            after_state = {
                **before_state,
                **snapshot(after, mask_fields=masked, only=change.changed_fields),
            }
        else:
            after_state = snapshot(after, mask_fields=masked)
    model_name = instance._meta.model_name
    chain.append(
        log_entry=_log_entry(instance, **log_fields),
        row=PaymentAudit(
            user_id=actor_id,
            action_type=f"{source}.{model_name}.{_ACTION_NAMES[change.action]}"[:50],
            object_type=instance._meta.label_lower,
            object_id=str(instance.pk),
            before_state=before_state,
            after_state=after_state,
            ip_address=ctx.ip_address,
            device_id=ctx.device_id,
            request_id=ctx.request_id,
            created_at=timezone.now(),
        ),
    )


def _log_entry(instance: models.Model, **fields: Any) -> LogEntry:
    """The LogEntry that `LogEntry.objects.log_create(instance, **fields)` would save, unsaved:
    the chain append inserts it in its own statement (one round trip less per change)."""
    manager = LogEntry.objects
    pk = manager._get_pk_value(instance)
    fields.setdefault("content_type", ContentType.objects.get_for_model(instance))
    fields.setdefault("object_pk", pk)
    try:
        object_repr = smart_str(instance)
    except ObjectDoesNotExist:
        object_repr = DEFAULT_OBJECT_REPR
    fields.setdefault("object_repr", object_repr)
    fields.setdefault("serialized_data", manager._get_serialized_data_or_none(instance))
    if isinstance(pk, int):
        fields.setdefault("object_id", pk)
    get_additional_data = getattr(instance, "get_additional_data", None)
    if callable(get_additional_data):
        fields.setdefault("additional_data", get_additional_data())
    return LogEntry(**fields)
