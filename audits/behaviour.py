"""Staff behaviour rules: exports, document downloads, approvals and refunds far above the
person's usual rate, activity at hours the person is not usually active, and sign-ins from a
network the person never used. Each finding is a `security.staff_unusual` row on the person's
security trail (who, what, the figures, a sentence), where auditors and administrators read
it; nothing is refused (a person's unusual day is for a human to judge).

Each check reads the person's own history of one kind (one range scan of the
(user, kind, at) index over STAFF_HISTORY_DAYS): its cost follows the person's activity, never
the whole table.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import ExtractHour
from django.utils import timezone

from .models import StaffActivity, StaffActivityKind


@dataclass(frozen=True)
class Finding:
    rule: str
    figures: dict[str, Any]
    explanation: str


def _rate(user_id: int, kind: str, now: datetime.datetime) -> Finding | None:
    days = settings.STAFF_HISTORY_DAYS
    history_from = now - datetime.timedelta(days=days)
    last_day = now - datetime.timedelta(days=1)
    counts = StaffActivity.objects.filter(
        user_id=user_id, kind=kind, at__gt=history_from
    ).aggregate(
        today=Count("pk", filter=Q(at__gt=last_day)),
        before=Count("pk", filter=Q(at__lte=last_day)),
    )
    usual = counts["before"] / (days - 1)
    limit = max(settings.STAFF_RATE_MIN, settings.STAFF_RATE_FACTOR * usual)
    if counts["today"] <= limit:
        return None
    label = StaffActivityKind(kind).label.lower()
    return Finding(
        "rate",
        {"last_24h": counts["today"], "usual_per_day": round(usual, 2), "limit": round(limit, 2)},
        f"{counts['today']} {label}s in 24 hours, above {limit:g} "
        f"({settings.STAFF_RATE_FACTOR:g} x the usual {usual:.1f} a day over {days} days)",
    )


def _hours(user_id: int, now: datetime.datetime) -> Finding | None:
    """An act in an hour (UTC, with the hour either side) that held less than
    STAFF_UNUSUAL_HOUR_SHARE of the person's acts in the history."""
    history_from = now - datetime.timedelta(days=settings.STAFF_HISTORY_DAYS)
    rows = (
        StaffActivity.objects.filter(user_id=user_id, at__gt=history_from, at__lt=now)
        .annotate(hour=ExtractHour("at"))
        .values("hour")
        .annotate(n=Count("pk"))
    )
    by_hour = {row["hour"]: row["n"] for row in rows}
    total = sum(by_hour.values())
    if total < settings.STAFF_HISTORY_MIN:
        return None
    near = sum(by_hour.get((now.hour + d) % 24, 0) for d in (-1, 0, 1))
    share = near / total
    if share >= settings.STAFF_UNUSUAL_HOUR_SHARE:
        return None
    return Finding(
        "unusual_hour",
        {"hour_utc": now.hour, "share": round(share, 4), "history": total},
        f"active at {now:%H}:00 UTC, an hour that held {share:.0%} of the person's "
        f"{total} acts over {settings.STAFF_HISTORY_DAYS} days",
    )


def staff_activity_record(*, user: Any, kind: str) -> list[Finding]:
    """Count one act of a staff person and check it; findings go to the security trail."""
    if user is None or not getattr(user, "is_staff", False):
        return []
    now = timezone.now()
    with transaction.atomic():
        findings = [f for f in (_hours(user.pk, now),) if f is not None]
        StaffActivity.objects.create(user_id=user.pk, kind=kind, at=now)
        if kind != StaffActivityKind.SIGNIN:
            rate = _rate(user.pk, kind, now)
            if rate is not None:
                findings.append(rate)
        for finding in findings:
            _record(user, kind, finding)
        return findings


def staff_new_network(*, user: Any, network: str) -> None:
    """A sign-in from a network the person never signed in from (audits/devices.py knows)."""
    _record(
        user,
        StaffActivityKind.SIGNIN,
        Finding(
            "new_network",
            {"network": network},
            f"signed in from {network}, a network this person never used",
        ),
    )


def staff_security_record(*, user: Any, action: str, after: dict[str, Any]) -> None:
    """A `security.<action>` row about a staff person, naming them as its actor: what they did
    or what was noticed of them (here, and a sign-in from a new device in audits/devices.py)."""
    from . import security

    security.record(
        action=action, object_type="auth.user", object_id=user.pk, after=after, actor_id=user.pk
    )


def _record(user: Any, kind: str, finding: Finding) -> None:
    staff_security_record(
        user=user,
        action="staff_unusual",
        after={
            "rule": finding.rule,
            "activity": kind,
            "figures": finding.figures,
            "explanation": finding.explanation,
        },
    )
