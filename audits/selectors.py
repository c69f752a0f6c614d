from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from django.db.models import QuerySet

from .models import PaymentAudit


def audit_search(
    *,
    object_type: str = "",
    object_id: str = "",
    actor: str = "",
    action: str = "",
    ip_address: str = "",
    device_id: str = "",
    date_from: Any = None,
    date_to: Any = None,
) -> QuerySet[PaymentAudit]:
    rows = PaymentAudit.objects.select_related("user")
    if object_type:
        rows = rows.filter(object_type=object_type)
    if object_id:
        rows = rows.filter(object_id=object_id.strip())
    if actor:
        rows = rows.filter(user__username=actor.strip())
    if action:
        rows = rows.filter(action_type__contains=action.strip())
    if ip_address:
        rows = rows.filter(ip_address=ip_address)
    if device_id:
        rows = rows.filter(device_id=device_id.strip())
    if date_from:
        rows = rows.filter(created_at__date__gte=date_from)
    if date_to:
        rows = rows.filter(created_at__date__lte=date_to)
    return rows.order_by("-created_at", "-id")


def object_log_entries(*, app_label: str, model: str, object_id: str) -> QuerySet[LogEntry]:
    return (
        LogEntry.objects.filter(
            content_type__app_label=app_label, content_type__model=model, object_pk=object_id
        )
        .select_related("actor", "content_type")
        .order_by("timestamp", "pk")
    )
