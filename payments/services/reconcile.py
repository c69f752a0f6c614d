"""Reconciliation: compare our records with the gateway's and fix what webhooks and lost answers
missed. Four passes over one gateway:

1. payments left without a gateway reference (a create whose answer was lost and never
   retried): found at the gateway by our id (Stripe metadata, Braintree order id) and settled;
   not there after UNREACHED_GRACE, failed with the reason in the audit trail;
2. open payments: the gateway's state applied when it is a forward move;
3. refunds of those payments and of any payment with a pending refund: pending ones settled,
   ones made at the gateway directly recorded;
4. open chargebacks: the dispute's state at the gateway applied.

Every fix goes through a service under the audit context source "reconcile"; what cannot be
fixed automatically is a difference for a person, kept on the ReconcileRun with the errors.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from audits import context

from ..core.errors import DomainError
from ..gateways import GatewayError, get_gateway
from ..models import Chargeback, Gateway, Payment, ReconcileRun, Refund
from .disputes import chargeback_apply_gateway_state
from .payments import (
    GATEWAY_CLOCK_SKEW,
    payment_apply_gateway_state,
    payment_fail_unreached,
    payment_settle_from_gateway,
)
from .refunds import refund_apply_gateway_state, refund_set_status

# Payments whose state can still change at the gateway.
OPEN_STATES = [
    Payment.Status.PENDING,
    Payment.Status.PROCESSING,
    Payment.Status.AUTHORIZED,
    Payment.Status.CAPTURED,
]


# Payments that may have refunds at the gateway.
REFUNDABLE_STATES = [
    Payment.Status.CAPTURED,
    Payment.Status.PARTIALLY_REFUNDED,
    Payment.Status.REFUNDED,
]


# A create still in flight (or its client about to retry) has no reference yet either: only
# after this long is "not found at the gateway" taken to mean it never got there.
UNREACHED_GRACE = datetime.timedelta(hours=1)


PROGRESS_EVERY = 100


Progress = Callable[[str, int, int], None]


@dataclass
class ReconcileReport:
    checked: int = 0
    fixed: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # seen, not fixable automatically
    errors: list[str] = field(default_factory=list)
    run_id: int | None = None


def reconcile(
    *,
    gateway: str,
    since: datetime.datetime,
    progress: Progress | None = None,
) -> ReconcileReport:
    """Compare and fix one gateway's records created since `since`; stores a ReconcileRun."""
    adapter = get_gateway(gateway)  # not configured: refused before anything is stored
    run = ReconcileRun.objects.create(gateway=gateway, since=since)
    report = ReconcileReport(run_id=run.pk)
    passes = (_unreferenced_payments, _open_payments, _refunds, _disputes)
    one_run = _Run(adapter, gateway, since, report, progress)
    with context.bind(source="reconcile", detail=f"reconcile {gateway}"):
        for one_pass in passes:
            one_pass(one_run)
    run.checked = report.checked
    run.fixed, run.differences, run.errors = report.fixed, report.differences, report.errors
    run.finished_at = timezone.now()
    run.save()
    return report


@dataclass(frozen=True)
class _Run:
    """What each pass of one run works with."""

    adapter: Any
    gateway: str
    since: datetime.datetime
    report: ReconcileReport
    progress: Progress | None

    def walk(self, label: str, items: Any) -> Iterable[Any]:
        """Yield each item, counting it checked and telling `progress` how far the pass is."""
        total = items.count()
        for done, item in enumerate(items.iterator(chunk_size=500), start=1):
            yield item
            self.report.checked += 1
            if self.progress and (done % PROGRESS_EVERY == 0 or done == total):
                self.progress(label, done, total)
        if self.progress and total == 0:
            self.progress(label, 0, 0)


def _unreferenced_payments(run: _Run) -> None:
    adapter, gateway, since, report = run.adapter, run.gateway, run.since, run.report
    payments = Payment.objects.filter(
        gateway=gateway, created_at__gte=since, status=Payment.Status.PENDING, gateway_reference=""
    ).order_by("pk")
    for payment in run.walk("payments without a gateway reference", payments):
        label = f"payment {payment.pk} (no gateway reference)"
        try:
            found = adapter.find_payment(
                payment_id=payment.pk,
                order_id=f"payment-{payment.pk}",
                created_after=payment.created_at - GATEWAY_CLOCK_SKEW,
            )
        except GatewayError as exc:
            report.errors.append(f"{label}: {exc}")
            continue
        if found is not None:
            try:
                settled = payment_settle_from_gateway(payment=payment, result=found)
            except (DomainError, ValidationError) as exc:  # e.g. the reference is another row's
                report.differences.append(
                    f"{label}: found at {gateway} as {found.reference}: {exc}"
                )
                continue
            report.fixed.append(
                f"{label}: found at {gateway} as {found.reference}, now {settled.status}"
            )
        elif payment.created_at < timezone.now() - UNREACHED_GRACE:
            reason = (
                f"not found at {gateway} by our id {payment.pk} "
                f"{_hours(UNREACHED_GRACE)} after it was created: it never reached the gateway"
            )
            if payment_fail_unreached(payment=payment, reason=reason):
                report.fixed.append(f"{label}: failed, {reason}")
        else:
            report.differences.append(
                f"{label}: not at {gateway} yet; failed by a later run if it stays missing"
            )


def _hours(delta: datetime.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} hour" + ("" if hours == 1 else "s")


def _open_payments(run: _Run) -> None:
    adapter, gateway, since, report = run.adapter, run.gateway, run.since, run.report
    payments = (
        Payment.objects.filter(gateway=gateway, created_at__gte=since, status__in=OPEN_STATES)
        .exclude(gateway_reference="")
        .order_by("pk")
    )
    for payment in run.walk("open payments", payments):

        def apply(theirs: Any, payment: Payment = payment) -> bool:
            return payment_apply_gateway_state(
                payment=payment,
                status=theirs.status,
                captured_amount=theirs.captured_amount or None,
            )

        _follow(
            report,
            gateway,
            payment,
            f"payment {payment.pk} ({payment.gateway_reference})",
            partial(adapter.fetch, reference=payment.gateway_reference),
            apply,
        )


def _follow(
    report: ReconcileReport,
    gateway: str,
    ours: Payment | Chargeback,
    label: str,
    fetch: Callable[[], Any],
    apply: Callable[[Any], bool],
) -> None:
    """One of our rows against the gateway's: `apply` takes the gateway's status when it is a
    forward move (and says whether it did); anything else is reported for a person."""
    try:
        theirs = fetch()
    except GatewayError as exc:
        report.errors.append(f"{label}: {exc}")
        return
    if theirs.status == ours.status:
        return
    label += f": ours {ours.status}, {gateway} {theirs.status}"
    if apply(theirs):
        report.fixed.append(label)
    else:
        report.differences.append(label + " (not a forward move; left for a person)")


def _refunds(run: _Run) -> None:
    adapter, gateway, since, report = run.adapter, run.gateway, run.since, run.report
    pending = Refund.objects.filter(status=Refund.Status.PENDING).values("payment_id")
    payments = (
        Payment.objects.filter(gateway=gateway)
        .filter(
            Q(created_at__gte=since, status__in=REFUNDABLE_STATES) | Q(pk__in=pending),
        )
        .exclude(gateway_reference="")
        .order_by("pk")
    )
    for payment in run.walk("refunds of captured payments", payments):
        try:
            theirs = adapter.list_refunds(
                reference=payment.gateway_reference, currency=payment.currency
            )
        except GatewayError as exc:
            report.errors.append(
                f"refunds of payment {payment.pk} ({payment.gateway_reference}): {exc}"
            )
            continue
        _refunds_of_payment(payment, theirs, gateway, report)


def _settle(
    report: ReconcileReport, label: str, apply: Callable[[], object], *, fixed: str, refused: str
) -> None:
    """Apply the gateway's state; the report says what was fixed or why it was not."""
    try:
        apply()
    except DomainError as exc:
        report.differences.append(f"{label}{refused}: {exc}")
        return
    report.fixed.append(f"{label}{fixed}")


def _refunds_of_payment(
    payment: Payment, theirs: list[Any], gateway: str, report: ReconcileReport
) -> None:
    ours = list(payment.refunds.all())
    by_reference = {r.gateway_reference: r for r in ours if r.gateway_reference}
    by_id = {r.pk: r for r in ours}
    unsent = [r for r in ours if not r.gateway_reference and r.status == Refund.Status.PENDING]
    seen = set()
    for refund in theirs:
        seen.add(refund.reference)

        def record_theirs(refund: Any = refund) -> None:
            refund_apply_gateway_state(
                payment=payment,
                gateway_reference=refund.reference,
                amount=refund.amount,
                status=refund.status,
            )

        mine = by_reference.get(refund.reference)
        if mine is None and refund.our_id in by_id and not by_id[refund.our_id].gateway_reference:
            mine = by_id[refund.our_id]
            # Ours, its answer lost: give it the gateway's reference (and state, if settled).
            label = (
                f"refund {mine.pk} of payment {payment.pk}: "
                f"found at {gateway} as {refund.reference}"
            )
            if refund.status == mine.status:
                report.differences.append(
                    f"{label}, still pending; the refund task records the reference on retry"
                )
                continue

            def give_reference(mine: Refund = mine, refund: Any = refund) -> None:
                refund_set_status(
                    refund=mine, status=refund.status, gateway_reference=refund.reference
                )

            _settle(report, label, give_reference, fixed=f", now {refund.status}", refused="")
            continue
        if mine is None:
            label = (
                f"refund {refund.reference} of payment {payment.pk} "
                f"({refund.amount} {payment.currency})"
            )
            if unsent:
                # It may be one of ours whose answer was lost: recording it as a new refund
                # could count the money twice.
                report.differences.append(
                    f"{label}: at {gateway} only, while our refund "
                    f"{', '.join(str(r.pk) for r in unsent)} has no reference; a person decides"
                )
                continue
            _settle(
                report,
                label,
                record_theirs,
                fixed=f": made at {gateway}, recorded here as {refund.status}",
                refused=f": made at {gateway}, not recorded",
            )
            continue
        if mine.status == refund.status:
            continue
        label = (
            f"refund {mine.pk} of payment {payment.pk} ({refund.reference}): ours {mine.status}, "
            f"{gateway} {refund.status}"
        )
        if refund.status not in mine.allowed_targets(mine.status):
            report.differences.append(label + " (not a forward move; left for a person)")
            continue
        _settle(report, label, record_theirs, fixed="", refused="")
    for mine in ours:
        if mine.gateway_reference and mine.gateway_reference not in seen:
            report.differences.append(
                f"refund {mine.pk} of payment {payment.pk} ({mine.gateway_reference}): "
                f"ours {mine.status}, not at {gateway}"
            )


def _disputes(run: _Run) -> None:
    adapter, gateway, report = run.adapter, run.gateway, run.report
    # Every open dispute, however old: its outcome can come months after it was opened.
    chargebacks = (
        Chargeback.objects.filter(gateway=gateway, status__in=Chargeback.OPEN)
        .select_related("payment")
        .order_by("pk")
    )
    for chargeback in run.walk("open disputes", chargebacks):

        def apply(theirs: Any, chargeback: Chargeback = chargeback) -> bool:
            if theirs.status not in chargeback.allowed_targets(chargeback.status):
                return False
            chargeback_apply_gateway_state(
                payment=chargeback.payment,
                gateway_reference=chargeback.gateway_reference,
                reason=chargeback.reason,
                amount=chargeback.amount,
                status=theirs.status,
            )
            return True

        _follow(
            report,
            gateway,
            chargeback,
            f"chargeback {chargeback.pk} ({chargeback.gateway_reference})",
            partial(adapter.fetch_dispute, dispute_reference=chargeback.gateway_reference),
            apply,
        )


def reconcile_all(*, since: datetime.datetime) -> dict[str, ReconcileReport | str]:
    """Every configured gateway; one not configured is skipped with its reason."""
    from ..gateways import GatewayNotConfigured

    results: dict[str, ReconcileReport | str] = {}
    for gateway in Gateway.values:
        try:
            results[gateway] = reconcile(gateway=gateway, since=since)
        except GatewayNotConfigured as exc:
            results[gateway] = str(exc)
    return results
