"""The overview's reads on the payments side: volume, success rate and refunds per day and
gateway from the daily roll-ups (never the payments table), disputes whose evidence is due, the
month's chargeback ratio per merchant against the threshold, and the approvals waiting.

Each function is a fixed number of queries, whatever the number of payments: the page that
shows them (kyc/overview.py, which may also show KYC) pins the total in its tests.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Q, Sum
from django.utils.safestring import SafeString

from .charts import Series, bar_chart
from .core.approvals import approval_kinds
from .core.money import format_minor
from .models import ApprovalRequest, Chargeback, PaymentDailyRollup
from .services.disputes import MerchantRatio, month_bounds


@dataclass(frozen=True)
class Chart:
    """An SVG chart and the same numbers as a table (headers, then rows of text)."""

    svg: SafeString
    title: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class GatewayTotals:
    gateway: str
    payments: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    open: int = 0

    @property
    def success_rate(self) -> float | None:
        """Succeeded over finished attempts (succeeded or failed): a canceled payment is the
        merchant's choice and an open one has no outcome yet."""
        finished = self.succeeded + self.failed
        return self.succeeded / finished if finished else None

    @property
    def success_rate_text(self) -> str:
        rate = self.success_rate
        return "—" if rate is None else f"{rate:.1%}"


@dataclass
class PaymentsOverview:
    first_day: datetime.date
    last_day: datetime.date
    refreshed_at: datetime.datetime | None
    volume_charts: list[Chart] = field(default_factory=list)
    success_charts: list[Chart] = field(default_factory=list)
    refund_chart: Chart | None = None
    gateways: list[GatewayTotals] = field(default_factory=list)
    refunded: list[tuple[str, int, int]] = field(default_factory=list)  # currency, count, amount


def _percent(value: float) -> str:
    return f"{value:.1f}%"


def _daily_chart(
    *,
    chart_id: str,
    title: str,
    labels: list[str],
    series: list[Series],
    columns: list[str],
    cells: list[list[str]],
    **options: Any,
) -> Chart:
    """Bars of `series` a day and the same figures as a table: a row a day, the day's label
    and then its `cells` under `columns`. `options` go to bar_chart (value_text, max_value)."""
    return Chart(
        svg=bar_chart(chart_id=chart_id, title=title, labels=labels, series=series, **options),
        title=title,
        headers=["Day", *columns],
        rows=[[label, *day] for label, day in zip(labels, cells, strict=True)],
    )


def payments_overview(*, today: datetime.date, days: int = 30) -> PaymentsOverview:
    """The last `days` UTC days up to today, from the roll-ups: one grouped query."""
    first = today - datetime.timedelta(days=days - 1)
    dates = [first + datetime.timedelta(days=n) for n in range(days)]
    index = {day: n for n, day in enumerate(dates)}
    labels = [f"{day:%d %b}" for day in dates]
    rows = list(
        PaymentDailyRollup.objects.filter(day__gte=first, day__lte=today)
        .values("day", "gateway", "currency")
        .annotate(
            payments=Sum("payments"),
            succeeded=Sum("succeeded"),
            failed=Sum("failed"),
            canceled=Sum("canceled"),
            open=Sum("open"),
            captured_amount=Sum("captured_amount"),
            refunds=Sum("refunds"),
            refunded_amount=Sum("refunded_amount"),
            refreshed_at=Max("refreshed_at"),
        )
        .order_by("day", "gateway", "currency")
    )
    gateways = sorted({row["gateway"] for row in rows})
    currencies = sorted({row["currency"] for row in rows})
    overview = PaymentsOverview(
        first_day=first,
        last_day=today,
        refreshed_at=max((row["refreshed_at"] for row in rows), default=None),
    )
    volume: dict[str, dict[str, list[int]]] = defaultdict(lambda: {g: [0] * days for g in gateways})
    succeeded = {g: [0] * days for g in gateways}
    failed = {g: [0] * days for g in gateways}
    refunds = {g: [0] * days for g in gateways}
    refund_amounts: dict[str, list[int]] = {c: [0] * days for c in currencies}
    totals = {g: GatewayTotals(g) for g in gateways}
    for row in rows:
        n, gateway = index[row["day"]], row["gateway"]
        volume[row["currency"]][gateway][n] += row["captured_amount"]
        succeeded[gateway][n] += row["succeeded"]
        failed[gateway][n] += row["failed"]
        refunds[gateway][n] += row["refunds"]
        refund_amounts[row["currency"]][n] += row["refunded_amount"]
        total = totals[gateway]
        for name in ("payments", "succeeded", "failed", "canceled", "open"):
            setattr(total, name, getattr(total, name) + row[name])
    overview.gateways = [totals[g] for g in gateways]

    for currency in currencies:
        per_gateway = volume[currency]

        def money(value: float, currency: str = currency) -> str:
            return format_minor(int(value), currency)

        overview.volume_charts.append(
            _daily_chart(
                chart_id=f"volume-{currency.lower()}",
                title=f"Captured volume per day, {currency}",
                labels=labels,
                series=[Series(g.title(), per_gateway[g]) for g in gateways],
                columns=[*(g.title() for g in gateways), "Total"],
                cells=[
                    [
                        *(money(per_gateway[g][n]) for g in gateways),
                        money(sum(per_gateway[g][n] for g in gateways)),
                    ]
                    for n in range(days)
                ],
                value_text=money,
            )
        )

    for gateway in gateways:
        rates = [
            100 * s / (s + f) if s + f else 0.0
            for s, f in zip(succeeded[gateway], failed[gateway], strict=True)
        ]
        overview.success_charts.append(
            _daily_chart(
                chart_id=f"success-{gateway}",
                title=f"Success rate per day, {gateway.title()}",
                labels=labels,
                series=[Series("Success rate", rates)],
                columns=["Succeeded", "Failed", "Success rate"],
                cells=[
                    [
                        str(succeeded[gateway][n]),
                        str(failed[gateway][n]),
                        _percent(rates[n]) if succeeded[gateway][n] + failed[gateway][n] else "—",
                    ]
                    for n in range(days)
                ],
                value_text=_percent,
                max_value=100,
            )
        )

    overview.refund_chart = _daily_chart(
        chart_id="refunds",
        title="Refunds requested per day",
        labels=labels,
        series=[Series(g.title(), refunds[g]) for g in gateways],
        columns=["Refunds", *(f"Amount {c}" for c in currencies)],
        cells=[
            [
                str(sum(refunds[g][n] for g in gateways)),
                *(format_minor(refund_amounts[c][n], c) for c in currencies),
            ]
            for n in range(days)
        ],
        value_text=lambda value: f"{int(value):,}",
    )
    overview.refunded = [
        (
            currency,
            sum(row["refunds"] for row in rows if row["currency"] == currency),
            sum(refund_amounts[currency]),
        )
        for currency in currencies
    ]
    return overview


@dataclass(frozen=True)
class DisputesDue:
    due_soon: int
    overdue: int
    soonest: list[Chargeback]
    due_soon_days: int


def disputes_due(*, now: datetime.datetime, limit: int = 10) -> DisputesDue:
    """Disputes still needing our evidence: overdue (the reply date passed; the daily review
    marks them expired) and due within CHARGEBACK_DUE_SOON_DAYS. Two queries."""
    soon = now + datetime.timedelta(days=settings.CHARGEBACK_DUE_SOON_DAYS)
    needing = Chargeback.objects.filter(
        status=Chargeback.Status.NEEDS_RESPONSE, evidence_due_by__lte=soon
    )
    counts = needing.aggregate(
        overdue=Count("pk", filter=Q(evidence_due_by__lt=now)),
        due_soon=Count("pk", filter=Q(evidence_due_by__gte=now)),
    )
    return DisputesDue(
        due_soon=counts["due_soon"],
        overdue=counts["overdue"],
        soonest=list(
            needing.select_related("payment__merchant").order_by("evidence_due_by", "pk")[:limit]
        ),
        due_soon_days=settings.CHARGEBACK_DUE_SOON_DAYS,
    )


@dataclass(frozen=True)
class MerchantChargebackRatio(MerchantRatio):
    name: str
    threshold: float

    @property
    def ratio_text(self) -> str:
        return f"{self.ratio:.2%}"

    @property
    def above(self) -> bool:
        # As the daily review flags them (services.disputes.daily_review).
        return self.ratio > self.threshold or (self.chargebacks > 0 and not self.settled_payments)


def chargeback_ratios_for_month(*, day: datetime.date) -> list[MerchantChargebackRatio]:
    """The month's chargebacks over settled payments per merchant with a chargeback, as
    services.disputes.chargeback_ratios counts them, but the settled payments from the
    roll-ups: two grouped queries. Those above the threshold first, then by ratio."""
    start, end = month_bounds(day)
    chargebacks = list(
        Chargeback.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by()
        .values(
            "payment__merchant_id",
            "payment__merchant__legal_name",
            "payment__merchant__trading_name",
        )
        .annotate(n=Count("pk"))
    )
    # An empty IN list runs no query at all: a constant 0 is just as well.
    settled = dict(
        PaymentDailyRollup.objects.filter(
            day__gte=start.date(),
            day__lt=end.date(),
            merchant_id__in=[row["payment__merchant_id"] for row in chargebacks],
        )
        .order_by()
        .values_list("merchant_id")
        .annotate(n=Sum("succeeded"))
        .values_list("merchant_id", "n")
    )
    threshold = settings.CHARGEBACK_RATIO_THRESHOLD
    ratios = [
        MerchantChargebackRatio(
            merchant_id=row["payment__merchant_id"],
            name=row["payment__merchant__trading_name"] or row["payment__merchant__legal_name"],
            chargebacks=row["n"],
            settled_payments=settled.get(row["payment__merchant_id"], 0),
            threshold=threshold,
        )
        for row in chargebacks
    ]
    return sorted(ratios, key=lambda r: (not r.above, -r.ratio, r.name))


@dataclass(frozen=True)
class ApprovalsWaiting:
    action: str
    label: str
    count: int
    oldest: datetime.datetime
    may_decide: bool


def approvals_waiting(*, user: Any) -> list[ApprovalsWaiting]:
    """Pending approvals per kind that this person may see: the kinds they may decide, or
    every kind for one who reads the approvals inbox but decides none (an auditor). One
    grouped query."""
    kinds = approval_kinds()
    deciding = {action for action, kind in kinds.items() if user.has_perm(kind.permission)}
    visible = (
        set(kinds) if not deciding and user.has_perm("payments.view_approvalrequest") else deciding
    )
    rows = (
        ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING)
        .order_by()
        .values("action")
        .annotate(n=Count("pk"), oldest=Min("requested_at"))
    )
    return sorted(
        (
            ApprovalsWaiting(
                action=row["action"],
                label=kinds[row["action"]].label if row["action"] in kinds else row["action"],
                count=row["n"],
                oldest=row["oldest"],
                may_decide=row["action"] in deciding,
            )
            for row in rows
            if row["action"] in visible
        ),
        key=lambda a: a.oldest,
    )


def approvals_visible(user: Any) -> bool:
    """Whether this person sees any approval kind on the overview."""
    return user.has_perm("payments.view_approvalrequest") or any(
        user.has_perm(kind.permission) for kind in approval_kinds().values()
    )
