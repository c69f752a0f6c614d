"""Staff accounts nobody uses are closed: PCI DSS 8.2.6 asks that accounts inactive for 90 days
be removed or disabled. Disabling (is_active off) keeps the person's history and audit rows;
the security trail records the change like any other (audits/security.py)."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import context


def inactive_staff(*, now: datetime.datetime | None = None) -> QuerySet:
    """Active staff accounts whose last sign-in (or creation, for one never used) is older than
    STAFF_INACTIVE_DAYS. The system user cannot sign in and is never active."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=settings.STAFF_INACTIVE_DAYS)
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_staff=True) | Q(is_superuser=True))
        .annotate(last_seen=Coalesce("last_login", "date_joined"))
        .filter(last_seen__lt=cutoff)
        .order_by("username")
    )


def staff_disable_inactive(*, now: datetime.datetime | None = None) -> list[str]:
    """Disable every inactive staff account; the usernames disabled."""
    disabled = []
    with context.bind(source="task", detail="staff_disable_inactive"):
        for user in inactive_staff(now=now):
            with transaction.atomic():
                user.is_active = False
                user.save(update_fields=["is_active"])
            disabled.append(user.username)
    return disabled
