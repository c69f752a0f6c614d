from __future__ import annotations

import datetime
from typing import Any

from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from config.querying import narrowed

from . import partitions
from .models import PaymentAudit

User = get_user_model()


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
    actor = (actor or "").strip()
    actor_id = None
    if actor:
        # By id, not through the join: the planner then knows how many rows the person has
        # and reads them from (user, created_at) instead of walking every row by date.
        actor_id = User.objects.filter(username=actor).values_list("pk", flat=True).first()
        if actor_id is None:
            return rows.none()
    rows = narrowed(
        rows,
        object_type=object_type,
        object_id=(object_id or "").strip(),
        user_id=actor_id,
        action_type__contains=(action or "").strip(),
        ip_address=ip_address,
        device_id=(device_id or "").strip(),
        # Bounds on the column itself (no cast to a date), so the created_at index serves them.
        created_at__gte=_day_start(date_from),
        created_at__lt=_day_start(date_to, days_after=1) or partitions.search_upper_bound(),
    )
    return rows.order_by("-created_at", "-id")


def _day_start(day: Any, *, days_after: int = 0) -> datetime.datetime | None:
    """Midnight starting `day` (plus `days_after` days) in the current time zone."""
    if day is None or day == "":
        return None
    moment = datetime.datetime.combine(day + datetime.timedelta(days=days_after), datetime.time())
    return timezone.make_aware(moment)


def object_log_entries(*, app_label: str, model: str, object_id: str) -> QuerySet[LogEntry]:
    return (
        LogEntry.objects.filter(
            content_type__app_label=app_label, content_type__model=model, object_pk=object_id
        )
        .select_related("actor", "content_type")
        .order_by("timestamp", "pk")
    )
