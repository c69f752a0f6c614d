"""The overview, everybody's landing page after sign-in: the sections their role may see.

- Payments (payments.view_payment): volume, success rate and refunds per day and gateway over
  30 days, from the daily roll-ups (payments/overview.py), never the payments table.
- Disputes (payments.view_chargeback): evidence due soon or overdue, and the month's
  chargeback ratio per merchant against CHARGEBACK_RATIO_THRESHOLD.
- KYC (who sees a case's details: analysts, officers, auditors): the open queue by status, the
  oldest open case and the cases past their SLA. Direct aggregates: the table is small.
- Approvals waiting: the kinds this person may decide (or all, read-only, for an auditor).

Here, in kyc, because it shows both apps (payments never imports kyc). Read-only: a fixed
number of queries whatever the data (tests/kyc/test_overview.py pins it).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from config.db_router import replica_reads
from payments import overview as payments_overview

from . import selectors
from .models import KycCase

SECTIONS = ("payments", "disputes", "kyc", "approvals")


def sections_for(user: Any) -> list[str]:
    """The overview's sections this person may see, in page order."""
    allowed = {
        "payments": user.has_perm("payments.view_payment"),
        "disputes": user.has_perm("payments.view_chargeback"),
        "kyc": selectors.sees_case_details(user),
        "approvals": payments_overview.approvals_visible(user),
    }
    return [name for name in SECTIONS if allowed[name]]


@dataclass(frozen=True)
class KycQueueOverview:
    by_status: list[tuple[str, str, int]]  # value, label, count (open statuses)
    open_cases: int
    overdue: int
    oldest: KycCase | None
    oldest_age: datetime.timedelta | None
    overdue_cases: list[KycCase]


def kyc_queue_overview(*, now: datetime.datetime, limit: int = 10) -> KycQueueOverview:
    """Three queries: counts by status and SLA breaches in one aggregate, the oldest open case,
    the longest-overdue cases (the queue's own "Overdue" tab)."""
    overdue = selectors.queue_tab("overdue", user=None, now=now)
    counts = KycCase.objects.aggregate(
        **{f"status_{value}": Count("pk", filter=Q(status=value)) for value in selectors.OPEN},
        overdue=Count("pk", filter=Q(pk__in=overdue.values("pk"))),
    )
    oldest = (
        KycCase.objects.filter(status__in=selectors.OPEN, submitted_at__isnull=False)
        .select_related("merchant")
        .order_by("submitted_at", "pk")
        .first()
    )
    by_status = [
        (str(value), KycCase.Status(value).label, counts[f"status_{value}"])
        for value in selectors.OPEN
    ]
    return KycQueueOverview(
        by_status=by_status,
        open_cases=sum(n for _, _, n in by_status),
        overdue=counts["overdue"],
        oldest=oldest,
        oldest_age=now - oldest.submitted_at if oldest and oldest.submitted_at else None,
        overdue_cases=list(
            overdue.select_related("merchant", "assignee").order_by("due_at", "pk")[:limit]
        ),
    )


@login_required
@replica_reads
def overview(request: HttpRequest) -> HttpResponse:
    user = request.user
    now = timezone.now()
    sections = sections_for(user)
    context: dict[str, Any] = {"sections": sections, "now": now}
    if "payments" in sections:
        context["payments"] = payments_overview.payments_overview(today=now.date())
    if "disputes" in sections:
        context["disputes"] = payments_overview.disputes_due(now=now)
        context["ratios"] = payments_overview.chargeback_ratios_for_month(day=now.date())
        context["ratio_threshold"] = f"{settings.CHARGEBACK_RATIO_THRESHOLD:.2%}"
    if "kyc" in sections:
        context["kyc"] = kyc_queue_overview(now=now)
    if "approvals" in sections:
        context["approvals"] = payments_overview.approvals_waiting(user=user)
    return render(request, "overview.html", context)
