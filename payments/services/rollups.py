"""Daily roll-ups of payments and refunds (PaymentDailyRollup): what the overview reads, so that
a page view never scans the payments table. A day is rebuilt whole from two grouped queries
(payments created that day, refunds requested that day), each a range scan on its created_at
index, whatever the size of the rest of the table.

Roll-ups are derived data and not audited: the payments and refunds they count are. The beat
task refreshes today and yesterday every few minutes and the last 35 days nightly (a payment
captured days after it was created, a refund that failed later); `refresh_rollups --days N`
rebuilds any range by hand.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from ..exceptions import PaymentsError
from ..models import Payment, PaymentDailyRollup, Refund

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# A payment's outcome for the roll-up, from its status. Settled as the chargeback ratio counts
# it (services.disputes.SETTLED): money taken, whatever was refunded since.
OUTCOMES: dict[str, list[str]] = {
    "succeeded": [
        Payment.Status.CAPTURED,
        Payment.Status.PARTIALLY_REFUNDED,
        Payment.Status.REFUNDED,
    ],
    "failed": [Payment.Status.FAILED],
    "canceled": [Payment.Status.CANCELED],
    "open": [Payment.Status.PENDING, Payment.Status.PROCESSING, Payment.Status.AUTHORIZED],
}
COUNTERS = [
    "payments",
    *OUTCOMES,
    "captured_amount",
    "refunds",
    "refunded_amount",
    "refunds_failed",
]


def day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """A UTC day as [start, end)."""
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
    return start, start + datetime.timedelta(days=1)


class RollupRangeInvalid(PaymentsError):
    def __init__(self, *, days: int) -> None:
        super().__init__(f"Roll-ups are refreshed for 1 to 3660 days, not {days}.")


@dataclass(frozen=True)
class RollupRefreshed:
    day: datetime.date
    rows: int
    payments: int
    refunds: int


Key = tuple[int, str, str]  # merchant id, gateway, currency


def _split(row: Mapping[str, Any], key: tuple[str, str, str]) -> tuple[Key, dict[str, int]]:
    """A grouped row as its key (merchant, gateway, currency) and its counters."""
    return (
        (int(row[key[0]]), str(row[key[1]]), str(row[key[2]])),
        {name: int(value) for name, value in row.items() if name not in key},
    )


def _payments_of(day: datetime.date) -> dict[Key, dict[str, int]]:
    start, end = day_bounds(day)
    grouped = (
        Payment.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by()
        .values("merchant_id", "gateway", "currency")
        .annotate(
            payments=Count("pk"),
            **{
                outcome: Count("pk", filter=Q(status__in=statuses))
                for outcome, statuses in OUTCOMES.items()
            },
            captured_amount=Sum("captured_amount", default=0),
        )
    )
    return dict(_split(row, ("merchant_id", "gateway", "currency")) for row in grouped)


def _refunds_of(day: datetime.date) -> dict[Key, dict[str, int]]:
    start, end = day_bounds(day)
    holding = Q(status__in=Refund.HOLDING)
    grouped = (
        Refund.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by()
        .values("payment__merchant_id", "payment__gateway", "payment__currency")
        .annotate(
            refunds=Count("pk", filter=holding),
            refunded_amount=Sum("amount", filter=holding, default=0),
            refunds_failed=Count("pk", filter=Q(status=Refund.Status.FAILED)),
        )
    )
    return dict(
        _split(row, ("payment__merchant_id", "payment__gateway", "payment__currency"))
        for row in grouped
    )


@transaction.atomic
def rollups_refresh(*, day: datetime.date, actor: User | None = None) -> RollupRefreshed:
    """Rebuild one UTC day's roll-ups from the payments and refunds tables.

    `actor` is taken as every service takes it; nothing audited is written. Two refreshes of
    one day at once both end with the day's numbers: the rows are deleted and upserted (the
    unique key decides a concurrent insert), in one transaction."""
    payments = _payments_of(day)
    refunds = _refunds_of(day)
    now = timezone.now()
    rows = []
    for key in sorted(payments.keys() | refunds.keys()):
        merchant_id, gateway, currency = key
        counters: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
        counters.update(payments.get(key, {}))
        counters.update(refunds.get(key, {}))
        rows.append(
            PaymentDailyRollup(
                day=day,
                merchant_id=merchant_id,
                gateway=gateway,
                currency=currency,
                refreshed_at=now,
                **counters,
            )
        )
    PaymentDailyRollup.objects.filter(day=day).delete()
    PaymentDailyRollup.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["day", "merchant", "gateway", "currency"],
        update_fields=[*COUNTERS, "refreshed_at"],
    )
    return RollupRefreshed(
        day=day,
        rows=len(rows),
        payments=sum(p["payments"] for p in payments.values()),
        refunds=sum(r["refunds"] + r["refunds_failed"] for r in refunds.values()),
    )


def rollups_refresh_recent(
    *,
    days: int,
    today: datetime.date | None = None,
    actor: User | None = None,
    progress: Callable[[RollupRefreshed], None] | None = None,
) -> list[RollupRefreshed]:
    """Refresh today and the `days` - 1 days before it, oldest first, each day in its own
    transaction (a long backfill holds no lock on the days already done)."""
    if not 1 <= days <= 3660:
        raise RollupRangeInvalid(days=days)
    today = today or timezone.now().date()
    done = []
    for back in range(days - 1, -1, -1):
        result = rollups_refresh(day=today - datetime.timedelta(days=back), actor=actor)
        if progress:
            progress(result)
        done.append(result)
    return done
