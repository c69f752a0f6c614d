"""The daily chargeback review: deadlines, expiries and each merchant's chargeback ratio."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from . import services
from .models import Chargeback, Merchant, Payment

log = logging.getLogger(__name__)

SETTLED = [Payment.Status.CAPTURED, Payment.Status.PARTIALLY_REFUNDED, Payment.Status.REFUNDED]


def chargebacks_due_soon(*, now: datetime.datetime | None = None) -> QuerySet[Chargeback]:
    now = now or timezone.now()
    soon = now + datetime.timedelta(days=settings.CHARGEBACK_DUE_SOON_DAYS)
    return Chargeback.objects.filter(
        status=Chargeback.Status.NEEDS_RESPONSE, evidence_due_by__gte=now, evidence_due_by__lte=soon
    )


def month_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime(day.year, day.month, 1, tzinfo=datetime.UTC)
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    return start, end


@dataclass(frozen=True)
class MerchantRatio:
    merchant_id: int
    chargebacks: int
    settled_payments: int

    @property
    def ratio(self) -> float:
        return self.chargebacks / self.settled_payments if self.settled_payments else 0.0


def chargeback_ratios(*, month: datetime.date) -> list[MerchantRatio]:
    """Chargebacks opened in the month over settled payments made in the month, per merchant
    with at least one chargeback: two grouped queries, whatever the number of merchants."""
    start, end = month_bounds(month)
    in_month = Q(created_at__gte=start, created_at__lt=end)
    chargebacks = dict(
        Chargeback.objects.filter(in_month)
        .values_list("payment__merchant")
        .annotate(n=Count("pk"))
        .values_list("payment__merchant", "n")
    )
    settled = dict(
        Payment.objects.filter(in_month, merchant__in=list(chargebacks), status__in=SETTLED)
        .values_list("merchant")
        .annotate(n=Count("pk"))
        .values_list("merchant", "n")
    )
    return [MerchantRatio(m, n, settled.get(m, 0)) for m, n in sorted(chargebacks.items())]


def daily_review(*, now: datetime.datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    due_soon = list(chargebacks_due_soon(now=now).select_related("payment"))
    for chargeback in due_soon:
        log.warning(
            "chargeback %s (payment %s) needs evidence by %s",
            chargeback.gateway_reference,
            chargeback.payment_id,
            chargeback.evidence_due_by.isoformat(),
        )
    expired = 0
    for chargeback in Chargeback.objects.filter(
        status=Chargeback.Status.NEEDS_RESPONSE, evidence_due_by__lt=now
    ):
        services.chargeback_set_status(chargeback=chargeback, status=Chargeback.Status.EXPIRED)
        expired += 1
    threshold = settings.CHARGEBACK_RATIO_THRESHOLD
    flagged = 0
    for ratio in chargeback_ratios(month=now.date()):
        if ratio.ratio > threshold or (ratio.chargebacks and not ratio.settled_payments):
            merchant = Merchant.objects.get(pk=ratio.merchant_id)
            services.merchant_flag_for_review(
                merchant=merchant,
                reason=(
                    f"chargeback ratio {ratio.ratio:.2%} in {now:%Y-%m} "
                    f"({ratio.chargebacks} of {ratio.settled_payments} settled payments) "
                    f"is above {threshold:.2%}"
                ),
            )
            flagged += 1
    return {"due_soon": len(due_soon), "expired": expired, "flagged": flagged}
