"""Registers a model with both audit trails.

django-auditlog keeps the field configuration (masked and excluded fields) in its registry, but
its own receivers are disconnected: they would read the row a second time on every update. Our
receivers (audits.receivers) read the stored row once, before the save, and give that one
before-state to both the LogEntry and, for payment records, the payment_audits row.
"""

from __future__ import annotations

from auditlog.registry import auditlog
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save

from . import receivers
from .crypto.fields import BlindIndexField
from .options import AuditOptions, set_options


def register_audited(
    model: type[models.Model],
    *,
    payment_audit: bool = False,
    mask_fields: list[str] | None = None,
    exclude_fields: list[str] | None = None,
) -> None:
    # A save that only moves the auto_now timestamp is not a change worth a row.
    untracked = ["updated_at"] if any(f.name == "updated_at" for f in model._meta.fields) else []
    # Blind indexes are derived from encrypted fields and would outlive a person's erasure.
    untracked += [f.name for f in model._meta.fields if isinstance(f, BlindIndexField)]
    auditlog.register(
        model,
        mask_fields=list(mask_fields or []),
        exclude_fields=[*(exclude_fields or []), *untracked],
    )
    # Private API of the pinned django-auditlog: drop its receivers, ours write its entries.
    auditlog._disconnect_signals(model)
    masked = frozenset((mask_fields or []) + (exclude_fields or []))
    set_options(model, AuditOptions(payment_audit=payment_audit, mask_fields=masked))
    uid = f"audits.{model._meta.label}"
    pre_save.connect(receivers.before_save, sender=model, dispatch_uid=uid)
    post_save.connect(receivers.after_save, sender=model, dispatch_uid=uid)
    post_delete.connect(receivers.after_delete, sender=model, dispatch_uid=uid)
