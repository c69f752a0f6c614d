"""Every write to a refund: requested (executed at once, or held for a second person above the
approval limits), submitted to the gateway, settled from the gateway's reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Sum
from django.utils import timezone

from audits import context
from audits.behaviour import staff_activity_record
from audits.models import StaffActivityKind
from audits.receivers import fields_changed

from ..core.records import check_keywords, create_valid
from ..exceptions import (
    PaymentsError,
    RefundExceedsCaptured,
    RefundNotAllowed,
)
from ..fraud.engine import fraud_record_hold, fraud_score_refund, fraud_screen_refund_request
from ..models import (
    ApprovalRequest,
    Merchant,
    Payment,
    Refund,
)
from .gateway_reports import (
    GatewayStateNeedsAttention,
    is_newer,
    is_stale,
    payment_locked,
    refund_held,
    refund_now_held,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class _RefundAmountAndReason(TypedDict):
    amount: int
    reason: str


class RefundTerms(_RefundAmountAndReason, total=False):
    """What is refunded and why, as asked (and kept in an approval's payload until approved);
    reason_detail: "" when not given."""

    reason_detail: str


def refund_create(
    *, payment: Payment, actor: User | None = None, **terms: Unpack[RefundTerms]
) -> Refund:
    """A pending refund that reserves `amount` of the captured total.

    The payment row is locked first, so two refunds racing on one payment are decided one
    after the other and together never exceed what was captured (the database's check
    constraint on refunded_amount is the last line of defence).
    """
    check_keywords(terms, RefundTerms)
    with transaction.atomic(), context.acting(actor):
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        _check_refundable(payment, terms["amount"])
        refund = create_valid(Refund(payment=payment, requested_by=actor, **terms))
        _settle_refunded_amount(payment)
        fraud_score_refund(refund=refund, payment=payment)
        return refund


def _check_refundable(payment: Payment, amount: int) -> None:
    if payment.status not in Payment.REFUNDABLE:
        raise RefundNotAllowed(payment_id=payment.pk, status=payment.status)
    if amount <= 0 or amount > payment.refundable_amount:
        raise RefundExceedsCaptured(
            payment_id=payment.pk, requested=amount, refundable=payment.refundable_amount
        )


def refund_set_status(
    *,
    refund: Refund,
    status: str,
    gateway_reference: str | None = None,
    failure_reason: str = "",
    actor: User | None = None,
) -> Refund:
    """Settle a refund. A succeeded one moves the payment to (partially) refunded; a failed or
    canceled one gives its reserved amount back to the payment (a failed one keeps why)."""
    with transaction.atomic(), context.acting(actor):
        payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        refund.transition_to(status)
        if gateway_reference is not None:
            refund.gateway_reference = gateway_reference
        if failure_reason:
            refund.failure_reason = failure_reason[: Refund.FAILURE_REASON_MAX]
        refund.save()
        _settle_refunded_amount(payment)
        return refund


# The payment's refunds pending or succeeded, and succeeded: what the ORM's
# aggregate(Coalesce(Sum(..., filter=...), 0)) sends, written once. Built by the ORM for each
# refund, it cost the webhook worker more Python than any other statement of a refund.
# Only placeholders are joined in: every value is a bound parameter.
_TOTALS_SQL = (
    "SELECT COALESCE(SUM(amount) FILTER (WHERE status IN ("  # nosec B608
    + ", ".join(["%s"] * len(Refund.HOLDING))
    + ")), 0), COALESCE(SUM(amount) FILTER (WHERE status = %s), 0) "
    "FROM payments_refund WHERE payment_id = %s"
)


def _refund_totals(payment: Payment) -> tuple[int, int]:
    """(holding, succeeded) of the payment's refund rows, read where the payment was read."""
    with connections[payment._state.db or "default"].cursor() as cursor:
        cursor.execute(_TOTALS_SQL, [*sorted(Refund.HOLDING), Refund.Status.SUCCEEDED, payment.pk])
        holding, succeeded = cursor.fetchone()
    return int(holding), int(succeeded)


def _settle_refunded_amount(payment: Payment) -> None:
    """The payment's refunded amount and status from its refund rows; the caller holds the
    payment's row lock. Never incremented: a refund counted twice (our row and a webhook's, a
    retried settle) would show money leaving twice, so the total is always recomputed."""
    holding, succeeded = _refund_totals(payment)
    changed = payment.refunded_amount != holding
    payment.refunded_amount = holding
    if succeeded:
        fully = succeeded >= payment.captured_amount
        target = Payment.Status.REFUNDED if fully else Payment.Status.PARTIALLY_REFUNDED
        if payment.status != target:  # a further partial refund leaves it where it is
            payment.transition_to(target)
            changed = True
    if changed:
        payment.save(update_fields=fields_changed(payment))


def refund_apply_gateway_state(
    *,
    payment: Payment,
    gateway_reference: str,
    amount: int,
    status: str,
    refund_id: int | None = None,
    event_at: Any = None,
) -> Refund:
    """Record a refund the gateway reports: ours (matched by the id we sent with it, then by
    its reference) or one made at the gateway directly (created here, counted against the
    refundable amount). The payment's refunded total is recomputed from its refund rows."""
    with transaction.atomic():
        payment = payment_locked(payment.pk)
        refund = _refund_for_gateway_report(payment, gateway_reference, refund_id)
        if refund is None:
            return _refund_made_at_gateway(payment, gateway_reference, amount, status, event_at)
        refund_now_held(refund, gateway_reference)
        changed = False
        if refund.gateway_reference is None:
            # The webhook came before refund_submit stored the reference: this is that refund.
            refund.gateway_reference, changed = gateway_reference, True
        if not is_stale(refund.gateway_event_at, event_at):
            if refund.status != status:
                if status in refund.allowed_targets(refund.status):
                    refund.transition_to(status)
                    changed = True
                elif refund.status == Refund.Status.SUCCEEDED and status in (
                    Refund.Status.FAILED,
                    Refund.Status.CANCELED,
                ):
                    raise GatewayStateNeedsAttention(
                        f"Refund {refund.pk} ({gateway_reference}) is {status} at the gateway "
                        "after it had succeeded: the customer may not have the money back. It "
                        "stays succeeded here until a person decides."
                    )
            if (changed or refund.status == status) and is_newer(refund.gateway_event_at, event_at):
                refund.gateway_event_at, changed = event_at, True
        if changed:
            refund.save()
            _settle_refunded_amount(payment)
        return refund


def _refund_for_gateway_report(
    payment: Payment, gateway_reference: str, refund_id: int | None
) -> Refund | None:
    refunds = Refund.objects.select_for_update()
    looked, found = refund_held(gateway_reference)
    if refund_id is not None:
        if found is not None and (found.pk, found.payment_id) == (refund_id, payment.pk):
            return found  # the instance a batch holds: never a second one of the same row
        ours = refunds.filter(pk=refund_id, payment=payment).first()
        if ours is not None and ours.gateway_reference in (None, gateway_reference):
            return ours
    if not looked:
        found = refunds.filter(gateway_reference=gateway_reference).first()
    if found is not None and found.payment_id != payment.pk:
        raise PaymentsError(
            f"Refund {gateway_reference} belongs to payment {found.payment_id}, "
            f"not to payment {payment.pk}."
        )
    return found


def _refund_made_at_gateway(
    payment: Payment, gateway_reference: str, amount: int, status: str, event_at: Any
) -> Refund:
    if status in Refund.HOLDING and amount > payment.refundable_amount:
        raise RefundExceedsCaptured(
            payment_id=payment.pk, requested=amount, refundable=payment.refundable_amount
        )
    # The payment is the row locked above, and the reference was just looked for: neither is
    # asked again (the unique index refuses a refund recorded meanwhile by another worker).
    refund = create_valid(
        Refund(
            payment=payment,
            amount=amount,
            status=status,
            gateway_reference=gateway_reference,
            gateway_event_at=event_at,
            reason=Refund.Reason.OTHER,
            reason_detail="made at the gateway, recorded from its webhook",
        ),
        exclude=["payment", "gateway_reference"],
    )
    refund_now_held(refund, gateway_reference)
    _settle_refunded_amount(payment)
    fraud_score_refund(refund=refund, payment=payment)
    return refund


def refund_submit(*, refund: Refund) -> Refund:
    """Send a pending refund to its gateway, once: a refund that already has the gateway's
    reference is not sent again, and the gateway sees the same idempotency key on a retry.
    Our refund id travels with it, so a webhook that overtakes the answer finds this row.

    A refusal (declined, an error the gateway names, or the gateway not configured) fails the
    refund with the reason staff read on the payment's page, gives the amount back to the
    payment, and is raised again for the task's log."""
    from ..gateway_problems import staff_message
    from ..gateways import GatewayError, GatewayUnavailable, get_gateway

    refund = Refund.objects.select_related("payment").get(pk=refund.pk)
    if refund.gateway_reference or refund.status != Refund.Status.PENDING:
        return refund
    payment = refund.payment
    try:
        result = get_gateway(payment.gateway).refund(
            reference=payment.gateway_reference,
            amount=refund.amount,
            currency=payment.currency,
            idempotency_key=f"refund-{refund.pk}",
            refund_id=refund.pk,
        )
    except GatewayUnavailable:
        raise  # outcome unknown: the task retries with the same key
    except GatewayError as exc:
        refund_set_status(
            refund=refund,
            status=Refund.Status.FAILED,
            failure_reason=staff_message(exc, gateway=payment.gateway),
        )
        raise
    with transaction.atomic():
        # Same lock order as the webhook's refund_apply_gateway_state (payment, then refund):
        # whichever comes second sees what the first did and only moves the row forward.
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        changed = False
        if refund.gateway_reference is None:
            refund.gateway_reference, changed = result.reference, True
        if result.status != refund.status and result.status in refund.allowed_targets(
            refund.status
        ):
            refund.transition_to(result.status)
            changed = True
        if changed:
            refund.save()
            _settle_refunded_amount(payment)
        return refund


# The approval kinds these services request; payments/approvals.py declares what each does.
REFUND_APPROVAL = "refund"


@dataclass(frozen=True)
class RefundRequested:
    """What refund_request did: the refund it executed at once, or the approval request the
    refund waits on (exactly one of the two)."""

    refund: Refund | None = None
    approval: ApprovalRequest | None = None

    @property
    def needs_approval(self) -> bool:
        return self.approval is not None


def refund_request(
    *, payment: Payment, amount: int, reason: str, reason_detail: str = "", actor: User
) -> RefundRequested:
    """A refund asked for by a person: executed at once while it stays within the approval
    limits, otherwise held for a second person's approval (maker-checker).

    The limits count what is refunded already, not only this request: the payment's refunds
    (pending or succeeded) plus this one against REFUND_APPROVAL_THRESHOLD, and the merchant's
    refunds in this currency today plus this one against REFUND_APPROVAL_DAILY_THRESHOLD, so
    four refunds just under the threshold do not avoid the second person. The merchant's row is
    locked while they are counted: two requests racing are counted one after the other. The
    refundable amount is checked now either way, so a request that could never be executed is
    refused at once."""
    from ..core import approvals

    with transaction.atomic():
        staff_activity_record(user=actor, kind=StaffActivityKind.REFUND)
        Merchant.objects.select_for_update().get(pk=payment.merchant_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        _check_refundable(payment, amount)
        over_limit = _refund_limit_exceeded(payment, amount)
        screened = fraud_screen_refund_request(payment=payment, amount=amount)
        held = screened.score >= settings.FRAUD_HOLD_SCORE
        if held:
            because = f"fraud score {screened.score}: {screened.explanation}"
            over_limit = f"{over_limit}; {because}" if over_limit else because
        terms = RefundTerms(amount=amount, reason=reason, reason_detail=reason_detail)
        if over_limit:
            approval = approvals.approval_request(
                action=REFUND_APPROVAL,
                target=payment,
                actor=actor,
                payload={**terms, "needs_approval_because": over_limit},
                reason=reason_detail or reason,
            )
            if held:
                fraud_record_hold(payment=payment, amount=amount, scored=screened)
            return RefundRequested(approval=approval)
        refund = _refund_and_submit(payment=payment, requested_by=actor, actor=actor, **terms)
        return RefundRequested(refund=refund)


def _refund_limit_exceeded(payment: Payment, amount: int) -> str:
    """Why a refund of `amount` needs a second person ("" if it does not). The caller holds
    the merchant's and the payment's row locks."""
    from ..core.money import format_minor

    threshold = settings.REFUND_APPROVAL_THRESHOLD
    on_payment = payment.refunded_amount + amount
    if on_payment > threshold:
        return (
            f"refunds on this payment would total {format_minor(on_payment, payment.currency)}, "
            f"above the approval threshold of {format_minor(threshold, payment.currency)}"
        )
    daily = settings.REFUND_APPROVAL_DAILY_THRESHOLD
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    today = (
        Refund.objects.filter(
            payment__merchant_id=payment.merchant_id,
            payment__currency=payment.currency,
            status__in=Refund.HOLDING,
            created_at__gte=midnight,
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )
    if today + amount > daily:
        return (
            f"the merchant's refunds in {payment.currency} today would total "
            f"{format_minor(today + amount, payment.currency)}, above the daily approval "
            f"threshold of {format_minor(daily, payment.currency)}"
        )
    return ""


def _refund_and_submit(
    *, payment: Payment, requested_by: User, actor: User, **terms: Unpack[RefundTerms]
) -> Refund:
    from ..tasks import submit_refund

    with transaction.atomic():
        refund = refund_create(payment=payment, actor=actor, **terms)
        if refund.requested_by_id != requested_by.pk:
            with context.acting(actor):
                refund.requested_by = requested_by
                refund.save()
        transaction.on_commit(lambda: submit_refund.delay(refund.pk), robust=True)
        return refund


def refund_execute_approved(request: ApprovalRequest, actor: User) -> Refund:
    """What approving a REFUND_APPROVAL request does (declared in payments/approvals.py)."""
    payload = request.payload
    terms = RefundTerms(
        amount=int(payload["amount"]),
        reason=payload["reason"],
        reason_detail=payload.get("reason_detail", ""),
    )
    return _refund_and_submit(
        payment=Payment.objects.get(pk=int(request.target_id)),
        requested_by=request.requested_by,
        actor=actor,
        **terms,
    )
