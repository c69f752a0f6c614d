from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from django.db.models import QuerySet

from config.querying import narrowed

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
    rows = narrowed(
        PaymentAudit.objects.select_related("user"),
        object_type=object_type,
        object_id=(object_id or "").strip(),
        user__username=(actor or "").strip(),
        action_type__contains=(action or "").strip(),
        ip_address=ip_address,
        device_id=(device_id or "").strip(),
        created_at__date__gte=date_from,
        created_at__date__lte=date_to,
    )
    return rows.order_by("-created_at", "-id")


def object_log_entries(*, app_label: str, model: str, object_id: str) -> QuerySet[LogEntry]:
    return (
        LogEntry.objects.filter(
            content_type__app_label=app_label, content_type__model=model, object_pk=object_id
        )
        .select_related("actor", "content_type")
        .order_by("timestamp", "pk")
    )
