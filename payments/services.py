"""Every write to merchants, payments, refunds and chargebacks.

Each service is one transaction, locks the rows it changes, and binds the acting user into the
audit context (no actor: the system user, with the context's source).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from audits import context

from .exceptions import (
    IdempotencyKeyReused,
    MerchantCannotTakePayments,
    MerchantStatusRefused,
    PaymentsError,
    RefundExceedsCaptured,
    RefundNotAllowed,
)
from .models import (
    ApprovalRequest,
    Chargeback,
    ChargebackEvidence,
    EvidenceFile,
    Merchant,
    Payment,
    Refund,
    WebhookEvent,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .gateways import GatewayPayment

CONTACT_FIELDS = ("contact_name", "contact_email", "contact_phone")


_acting = context.acting


def merchant_create(
    *,
    legal_name: str,
    country: str,
    contact_email: str,
    trading_name: str = "",
    contact_name: str = "",
    contact_phone: str = "",
    risk_level: str = "medium",
    actor: User | None = None,
) -> Merchant:
    with transaction.atomic(), _acting(actor):
        merchant = Merchant(
            legal_name=legal_name,
            trading_name=trading_name,
            country=country.upper(),
            contact_name=contact_name,
            contact_email=contact_email,
            contact_phone=contact_phone,
            risk_level=risk_level,
        )
        merchant.full_clean()
        merchant.save()
        return merchant


def merchant_update_contact(
    *, merchant: Merchant, actor: User | None = None, **contact: str
) -> Merchant:
    unknown = set(contact) - set(CONTACT_FIELDS)
    if unknown:
        raise ValueError(f"not contact fields: {sorted(unknown)}")
    with transaction.atomic(), _acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        for name, value in contact.items():
            setattr(merchant, name, value)
        merchant.full_clean()
        merchant.save()
        return merchant


# The KYC case model, named by label: payments never imports kyc, yet checks the proof it is
# handed (an approved case of this very merchant, read again from the database).
KYC_CASE_LABEL = "kyc.kyccase"
REACTIVATE_PERMISSION = "payments.change_merchant"


def _reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise MerchantStatusRefused(f"Give a reason to {what}.")
    return reason[:200]


def merchant_set_status(
    *, merchant: Merchant, status: str, reason: str = "", actor: User | None = None
) -> Merchant:
    """Every status change but the first activation, which only an approved KYC case gives
    (merchant_activate_after_kyc). Suspending keeps its reason on the merchant; re-activating
    a suspended merchant needs a reason and a person holding REACTIVATE_PERMISSION."""
    with transaction.atomic(), _acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        if status == Merchant.Status.ACTIVE:
            if merchant.status == Merchant.Status.PENDING:
                raise MerchantStatusRefused(
                    f"{merchant} becomes active only when its KYC case is approved."
                )
            if merchant.status == Merchant.Status.SUSPENDED:
                if actor is None or not actor.has_perm(REACTIVATE_PERMISSION):
                    raise MerchantStatusRefused(
                        f"Re-activating {merchant} needs the permission '{REACTIVATE_PERMISSION}'."
                    )
                reason = _reason(reason, f"re-activate {merchant}")
                merchant.flagged_for_review = False
                merchant.flag_reason = f"re-activated: {reason}"
        elif status == Merchant.Status.SUSPENDED:
            reason = _reason(reason, f"suspend {merchant}")
            merchant.flagged_for_review, merchant.flag_reason = True, f"suspended: {reason}"
        merchant.transition_to(status)
        merchant.save()
        return merchant


def merchant_activate_after_kyc(
    *, merchant: Merchant, approved_case: Any, actor: User | None = None
) -> Merchant:
    """Activate a pending (or re-activate a suspended) merchant on the strength of an approved
    KYC case, called by the KYC decision inside its transaction."""
    with transaction.atomic(), _acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        if getattr(approved_case, "_meta", None) is None or (
            approved_case._meta.label_lower != KYC_CASE_LABEL
        ):
            raise MerchantStatusRefused("Activation needs an approved KYC case as proof.")
        case = type(approved_case).objects.filter(pk=approved_case.pk).first()
        if case is None or case.merchant_id != merchant.pk or case.status != "approved":
            raise MerchantStatusRefused(
                f"{merchant} becomes active only when its own KYC case is approved."
            )
        if merchant.status == Merchant.Status.SUSPENDED:
            merchant.flagged_for_review = False
            merchant.flag_reason = f"re-activated: KYC case {case.reference} approved"
        merchant.transition_to(Merchant.Status.ACTIVE)
        merchant.save()
        return merchant


def payment_record(
    *,
    merchant: Merchant,
    gateway: str,
    amount: int,
    currency: str,
    gateway_reference: str = "",
    card_brand: str = "",
    card_last4: str = "",
    customer_email: str = "",
    description: str = "",
    client_key: str = "",
    actor: User | None = None,
) -> Payment:
    """A new payment for an active merchant, in status pending; with a `client_key` (the
    caller's Idempotency-Key hashed in its scope), the payment already recorded under that key
    in the last CLIENT_KEY_TTL instead of a second one."""
    return _payment_record_once(
        merchant=merchant,
        gateway=gateway,
        amount=amount,
        currency=currency,
        gateway_reference=gateway_reference,
        card_brand=card_brand,
        card_last4=card_last4,
        customer_email=customer_email,
        description=description,
        client_key=client_key,
        actor=actor,
    )[0]


# A caller's key names one payment for as long as Stripe keeps an idempotency key; after that
# the key is free again (the old row gives it up), as the API's saved answers are.
CLIENT_KEY_TTL = timedelta(hours=24)


def _payment_record_once(
    *,
    merchant: Merchant,
    gateway: str,
    amount: int,
    currency: str,
    client_key: str,
    actor: User | None,
    **fields: str,
) -> tuple[Payment, bool]:
    """(payment, whether it was created now)."""
    with transaction.atomic(), _acting(actor):
        # The merchant's row lock also orders two creates racing with one client key: the
        # second finds the first's row.
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        if not merchant.can_take_payments:
            raise MerchantCannotTakePayments(merchant_id=merchant.pk, status=merchant.status)
        if client_key:
            earlier = (
                Payment.objects.select_for_update()
                .filter(merchant=merchant, client_key=client_key)
                .first()
            )
            if earlier is not None and earlier.created_at > timezone.now() - CLIENT_KEY_TTL:
                if (earlier.gateway, earlier.amount, earlier.currency) != (
                    gateway,
                    amount,
                    currency.upper(),
                ):
                    raise IdempotencyKeyReused(payment_id=earlier.pk)
                return earlier, False
            if earlier is not None:
                earlier.client_key = ""
                earlier.save()
        payment = Payment(
            merchant=merchant,
            gateway=gateway,
            amount=amount,
            currency=currency.upper(),
            client_key=client_key,
            **fields,
        )
        payment.full_clean()
        payment.save()
        return payment, True


def payment_set_status(
    *, payment: Payment, status: str, captured_amount: int | None = None, actor: User | None = None
) -> Payment:
    """Move a payment along its status machine; capturing records the captured amount
    (the whole amount unless a partial capture is given)."""
    with transaction.atomic(), _acting(actor):
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        _move_payment(payment, status, captured_amount)
        return payment


def _move_payment(payment: Payment, status: str, captured_amount: int | None) -> None:
    payment.transition_to(status)
    if status == Payment.Status.CAPTURED:
        payment.captured_amount = payment.amount if captured_amount is None else captured_amount
        payment.full_clean()
    payment.save()


def refund_create(
    *,
    payment: Payment,
    amount: int,
    reason: str,
    reason_detail: str = "",
    actor: User | None = None,
) -> Refund:
    """A pending refund that reserves `amount` of the captured total.

    The payment row is locked first, so two refunds racing on one payment are decided one
    after the other and together never exceed what was captured (the database's check
    constraint on refunded_amount is the last line of defence).
    """
    with transaction.atomic(), _acting(actor):
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        _check_refundable(payment, amount)
        refund = Refund(
            payment=payment,
            amount=amount,
            reason=reason,
            reason_detail=reason_detail,
            requested_by=actor,
        )
        refund.full_clean()
        refund.save()
        _settle_refunded_amount(payment)
        return refund


def _check_refundable(payment: Payment, amount: int) -> None:
    if payment.status not in Payment.REFUNDABLE:
        raise RefundNotAllowed(payment_id=payment.pk, status=payment.status)
    if amount <= 0 or amount > payment.refundable_amount:
        raise RefundExceedsCaptured(
            payment_id=payment.pk, requested=amount, refundable=payment.refundable_amount
        )


def refund_set_status(
    *, refund: Refund, status: str, gateway_reference: str | None = None, actor: User | None = None
) -> Refund:
    """Settle a refund. A succeeded one moves the payment to (partially) refunded; a failed or
    canceled one gives its reserved amount back to the payment."""
    with transaction.atomic(), _acting(actor):
        payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        refund.transition_to(status)
        if gateway_reference is not None:
            refund.gateway_reference = gateway_reference
        refund.save()
        _settle_refunded_amount(payment)
        return refund


def _settle_refunded_amount(payment: Payment) -> None:
    """The payment's refunded amount and status from its refund rows; the caller holds the
    payment's row lock. Never incremented: a refund counted twice (our row and a webhook's, a
    retried settle) would show money leaving twice, so the total is always recomputed."""
    totals = payment.refunds.aggregate(
        holding=Coalesce(Sum("amount", filter=Q(status__in=Refund.HOLDING)), 0),
        succeeded=Coalesce(Sum("amount", filter=Q(status=Refund.Status.SUCCEEDED)), 0),
    )
    changed = payment.refunded_amount != totals["holding"]
    payment.refunded_amount = totals["holding"]
    if totals["succeeded"]:
        fully = totals["succeeded"] >= payment.captured_amount
        target = Payment.Status.REFUNDED if fully else Payment.Status.PARTIALLY_REFUNDED
        if payment.status != target:  # a further partial refund leaves it where it is
            payment.transition_to(target)
            changed = True
    if changed:
        payment.save()


def chargeback_record(
    *,
    payment: Payment,
    gateway_reference: str,
    reason: str,
    amount: int,
    evidence_due_by: Any = None,
    actor: User | None = None,
) -> Chargeback:
    with transaction.atomic(), _acting(actor):
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        chargeback = Chargeback(
            payment=payment,
            gateway=payment.gateway,
            gateway_reference=gateway_reference,
            reason=reason,
            amount=amount,
            currency=payment.currency,
            evidence_due_by=evidence_due_by,
        )
        chargeback.full_clean()
        chargeback.save()
        return chargeback


def chargeback_set_status(
    *, chargeback: Chargeback, status: str, actor: User | None = None
) -> Chargeback:
    with transaction.atomic(), _acting(actor):
        chargeback = Chargeback.objects.select_for_update().get(pk=chargeback.pk)
        chargeback.transition_to(status)
        chargeback.save()
        return chargeback


def webhook_event_requeue(*, event: WebhookEvent, actor: User | None = None) -> WebhookEvent:
    """Process a stored event again (replay), failed or not, with a fresh set of attempts:
    handlers only move rows forward, so replaying an event that already took effect changes
    nothing. The last error stays on the row until an attempt succeeds."""
    from .tasks import enqueue_webhook_event
    from .webhooks import ENQUEUE_GRACE

    with transaction.atomic(), _acting(actor):
        event = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        event.status = WebhookEvent.Status.RECEIVED
        event.processed_at = None
        event.attempts = 0
        # The enqueue below runs it now; if that message is lost, the sweep does after the grace.
        event.next_attempt_at = timezone.now() + ENQUEUE_GRACE
        event.save()
        transaction.on_commit(lambda: enqueue_webhook_event(event.pk), robust=True)
        return event


# --- State reported by a gateway (webhooks, reconciliation) --------------------------------
#
# A gateway's report is applied by the status of the object it carries, and only when it moves
# a row forward along its state machine. `event_at` is the gateway's creation time of the event:
# each row keeps the newest one applied (gateway_event_at), and an older event arriving late
# changes nothing at all, neither the status nor fields such as amounts and due dates.


class GatewayStateNeedsAttention(PaymentsError):
    """The gateway reports a state that our books must not follow on their own: money moved
    at the gateway in a way the state machine refuses (a captured payment whose settlement was
    declined, a refund that failed after it succeeded). Nothing is changed; the event fails
    with this message, so it stays visible with its error until a person settles it."""


def _is_stale(newest_applied: Any, event_at: Any) -> bool:
    return event_at is not None and newest_applied is not None and event_at < newest_applied


def _is_newer(newest_applied: Any, event_at: Any) -> bool:
    return event_at is not None and (newest_applied is None or event_at > newest_applied)


def payment_apply_gateway_state(
    *,
    payment: Payment,
    status: str,
    captured_amount: int | None = None,
    event_at: Any = None,
    charge_reference: str = "",
) -> bool:
    """Returns whether the payment's status moved."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if _is_stale(payment.gateway_event_at, event_at):
            return False
        changed = moved = False
        if charge_reference and not payment.charge_reference:
            payment.charge_reference, changed = charge_reference, True
        if payment.status != status and status in payment.allowed_targets(payment.status):
            payment.transition_to(status)
            if status == Payment.Status.CAPTURED:
                payment.captured_amount = (
                    payment.amount if captured_amount is None else captured_amount
                )
                payment.full_clean()
            changed = moved = True
        if (moved or payment.status == status) and _is_newer(payment.gateway_event_at, event_at):
            payment.gateway_event_at, changed = event_at, True
        if changed:
            payment.save()
        return moved


def payment_set_charge_reference(*, payment: Payment, charge_reference: str) -> Payment:
    """Remember the gateway's charge id once we learn it: disputes (and refunds of old API
    versions) may name only the charge."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if charge_reference and not payment.charge_reference:
            payment.charge_reference = charge_reference
            payment.save()
        return payment


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
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        refund = _refund_for_gateway_report(payment, gateway_reference, refund_id)
        if refund is None:
            return _refund_made_at_gateway(payment, gateway_reference, amount, status, event_at)
        changed = False
        if refund.gateway_reference is None:
            # The webhook came before refund_submit stored the reference: this is that refund.
            refund.gateway_reference, changed = gateway_reference, True
        if not _is_stale(refund.gateway_event_at, event_at):
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
            if (changed or refund.status == status) and _is_newer(
                refund.gateway_event_at, event_at
            ):
                refund.gateway_event_at, changed = event_at, True
        if changed:
            refund.save()
            _settle_refunded_amount(payment)
        return refund


def _refund_for_gateway_report(
    payment: Payment, gateway_reference: str, refund_id: int | None
) -> Refund | None:
    refunds = Refund.objects.select_for_update()
    if refund_id is not None:
        ours = refunds.filter(pk=refund_id, payment=payment).first()
        if ours is not None and ours.gateway_reference in (None, gateway_reference):
            return ours
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
    refund = Refund(
        payment=payment,
        amount=amount,
        status=status,
        gateway_reference=gateway_reference,
        gateway_event_at=event_at,
        reason=Refund.Reason.OTHER,
        reason_detail="made at the gateway, recorded from its webhook",
    )
    refund.full_clean()
    refund.save()
    _settle_refunded_amount(payment)
    return refund


def chargeback_apply_gateway_state(
    *,
    payment: Payment,
    gateway_reference: str,
    reason: str,
    amount: int,
    status: str,
    evidence_due_by: Any = None,
    event_at: Any = None,
) -> Chargeback:
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        chargeback = (
            Chargeback.objects.select_for_update()
            .filter(gateway=payment.gateway, gateway_reference=gateway_reference)
            .first()
        )
        if chargeback is None:
            chargeback = Chargeback(
                payment=payment,
                gateway=payment.gateway,
                gateway_reference=gateway_reference,
                reason=reason,
                amount=amount,
                currency=payment.currency,
                status=status,
                evidence_due_by=evidence_due_by,
                gateway_event_at=event_at,
            )
            chargeback.full_clean()
            chargeback.save()
            return chargeback
        if _is_stale(chargeback.gateway_event_at, event_at):
            return chargeback
        changed = False
        if evidence_due_by is not None and chargeback.evidence_due_by != evidence_due_by:
            chargeback.evidence_due_by, changed = evidence_due_by, True
        if amount > 0 and chargeback.amount != amount:
            chargeback.amount, changed = amount, True
        if chargeback.status != status and status in chargeback.allowed_targets(chargeback.status):
            chargeback.transition_to(status)
            changed = True
        if _is_newer(chargeback.gateway_event_at, event_at):
            chargeback.gateway_event_at, changed = event_at, True
        if changed:
            chargeback.full_clean()
            chargeback.save()
        return chargeback


def merchant_flag_for_review(
    *, merchant: Merchant, reason: str, actor: User | None = None
) -> Merchant:
    with transaction.atomic(), _acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        if merchant.flagged_for_review and merchant.flag_reason == reason:
            return merchant
        merchant.flagged_for_review, merchant.flag_reason = True, reason[:255]
        merchant.save()
        return merchant


# --- Through the gateways -------------------------------------------------------------------
#
# No database transaction is held open across a gateway call. Our row is committed first, the
# gateway is called with an idempotency key derived from that row, and the answer is applied in
# a second transaction. A timeout (GatewayUnavailable) leaves the row as it was: a webhook or
# `manage.py reconcile` settles it, never a guess.


def payment_authorize(
    *,
    merchant: Merchant,
    gateway: str,
    amount: int,
    currency: str,
    payment_method: str,
    capture: bool = True,
    customer_email: str = "",
    description: str = "",
    client_key: str = "",
    actor: User | None = None,
) -> Payment:
    """Charge (or authorize) through the gateway. A retry with the same `client_key` reuses
    the first attempt's row and so its gateway idempotency key (`payment-<id>`); it asks the
    gateway again only while that row has no gateway reference, and first looks there for what
    the lost attempt did, not relying on the gateway's own key replay (Braintree has none)."""
    from .gateways import GatewayDeclined, get_gateway

    adapter = get_gateway(gateway)  # refuses before writing anything if not configured
    payment, created = _payment_record_once(
        merchant=merchant,
        gateway=gateway,
        amount=amount,
        currency=currency,
        customer_email=customer_email,
        description=description,
        client_key=client_key,
        actor=actor,
    )
    if payment.gateway_reference or payment.status != Payment.Status.PENDING:
        return payment  # the first attempt was settled: its answer stands
    result = None
    if not created:
        result = adapter.find_payment(
            payment_id=payment.pk,
            order_id=f"payment-{payment.pk}",
            created_after=payment.created_at - GATEWAY_CLOCK_SKEW,
        )
    if result is None:
        try:
            result = adapter.authorize(
                amount=amount,
                currency=payment.currency,
                payment_method=payment_method,
                capture=capture,
                idempotency_key=f"payment-{payment.pk}",
                payment_id=payment.pk,
            )
        except GatewayDeclined:
            payment_apply_gateway_state(payment=payment, status=Payment.Status.FAILED)
            raise
    return payment_settle_from_gateway(payment=payment, result=result, actor=actor)


# Our clock and the gateway's may differ a little: look that much earlier than our row.
GATEWAY_CLOCK_SKEW = timedelta(minutes=5)


def payment_settle_from_gateway(
    *, payment: Payment, result: GatewayPayment, actor: User | None = None
) -> Payment:
    """Give a payment the gateway's reference, card and state, from the gateway's answer to
    our create (or what reconcile found for it). A row another path settled meanwhile keeps
    its state; only a forward move is made."""
    with transaction.atomic(), _acting(actor):
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        payment.gateway_reference = result.reference
        payment.card_brand, payment.card_last4 = result.card_brand[:20], result.card_last4
        if result.charge_reference and not payment.charge_reference:
            # Disputes and older refund events name only the charge.
            payment.charge_reference = result.charge_reference
        if result.status != payment.status and result.status in payment.allowed_targets(
            payment.status
        ):
            payment.transition_to(result.status)
            if result.status == Payment.Status.CAPTURED:
                payment.captured_amount = result.captured_amount or payment.amount
        payment.full_clean()
        payment.save()
        return payment


def payment_fail_unreached(*, payment: Payment, reason: str) -> bool:
    """A pending payment without a gateway reference that the gateway does not know after the
    grace period: it never reached the gateway, so it failed. The reason goes into the audit
    trail. Returns whether the payment changed (a webhook may have settled it meanwhile)."""
    with transaction.atomic(), context.bind(detail=reason[:255]):
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.gateway_reference or payment.status != Payment.Status.PENDING:
            return False
        payment.transition_to(Payment.Status.FAILED)
        payment.save()
        return True


def payment_capture(
    *, payment: Payment, amount: int | None = None, actor: User | None = None
) -> Payment:
    from .gateways import get_gateway

    payment.check_transition(current=payment.status, target=Payment.Status.CAPTURED)
    result = get_gateway(payment.gateway).capture(
        reference=payment.gateway_reference,
        amount=amount,
        idempotency_key=f"payment-{payment.pk}-capture",
    )
    captured = amount if amount is not None else (result.captured_amount or payment.amount)
    with _acting(actor):
        payment_apply_gateway_state(
            payment=payment, status=Payment.Status.CAPTURED, captured_amount=captured
        )
    return Payment.objects.get(pk=payment.pk)


def payment_cancel(*, payment: Payment, actor: User | None = None) -> Payment:
    from .gateways import get_gateway

    payment = Payment.objects.get(pk=payment.pk)
    payment.check_transition(current=payment.status, target=Payment.Status.CANCELED)
    if not payment.gateway_reference:
        raise PaymentsError(
            f"Payment {payment.pk} has no {payment.gateway} reference yet, so there is nothing "
            f"to cancel at the gateway: `manage.py reconcile` settles it first."
        )
    get_gateway(payment.gateway).cancel(
        reference=payment.gateway_reference, idempotency_key=f"payment-{payment.pk}-cancel"
    )
    with _acting(actor):
        payment_apply_gateway_state(payment=payment, status=Payment.Status.CANCELED)
    return Payment.objects.get(pk=payment.pk)


def refund_submit(*, refund: Refund) -> Refund:
    """Send a pending refund to its gateway, once: a refund that already has the gateway's
    reference is not sent again, and the gateway sees the same idempotency key on a retry.
    Our refund id travels with it, so a webhook that overtakes the answer finds this row."""
    from .gateways import GatewayDeclined, GatewayError, GatewayUnavailable, get_gateway

    refund = Refund.objects.select_related("payment").get(pk=refund.pk)
    if refund.gateway_reference or refund.status != Refund.Status.PENDING:
        return refund
    payment = refund.payment
    gateway = get_gateway(payment.gateway)  # not configured: the refund stays pending
    try:
        result = gateway.refund(
            reference=payment.gateway_reference,
            amount=refund.amount,
            currency=payment.currency,
            idempotency_key=f"refund-{refund.pk}",
            refund_id=refund.pk,
        )
    except GatewayUnavailable:
        raise  # outcome unknown: the task retries with the same key
    except (GatewayDeclined, GatewayError):
        refund_set_status(refund=refund, status=Refund.Status.FAILED)
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


# --- Requests that may need a second person -------------------------------------------------

# The approval kinds these services request; payments/approvals.py declares what each does.
REFUND_APPROVAL = "refund"
CHARGEBACK_ACCEPT_APPROVAL = "chargeback_accept"


def refund_request(
    *, payment: Payment, amount: int, reason: str, reason_detail: str = "", actor: User
) -> Refund | ApprovalRequest:
    """A refund asked for by a person: executed at once while it stays within the approval
    limits, otherwise held for a second person's approval (maker-checker).

    The limits count what is refunded already, not only this request: the payment's refunds
    (pending or succeeded) plus this one against REFUND_APPROVAL_THRESHOLD, and the merchant's
    refunds in this currency today plus this one against REFUND_APPROVAL_DAILY_THRESHOLD, so
    four refunds just under the threshold do not avoid the second person. The merchant's row is
    locked while they are counted: two requests racing are counted one after the other. The
    refundable amount is checked now either way, so a request that could never be executed is
    refused at once."""
    from .core import approvals

    with transaction.atomic():
        Merchant.objects.select_for_update().get(pk=payment.merchant_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        _check_refundable(payment, amount)
        over_limit = _refund_limit_exceeded(payment, amount)
        if over_limit:
            return approvals.approval_request(
                action=REFUND_APPROVAL,
                target=payment,
                requested_by=actor,
                payload={
                    "amount": amount,
                    "reason": reason,
                    "reason_detail": reason_detail,
                    "needs_approval_because": over_limit,
                },
                reason=reason_detail or reason,
            )
        return _refund_and_submit(
            payment=payment,
            amount=amount,
            reason=reason,
            reason_detail=reason_detail,
            requested_by=actor,
            actor=actor,
        )


def _refund_limit_exceeded(payment: Payment, amount: int) -> str:
    """Why a refund of `amount` needs a second person ("" if it does not). The caller holds
    the merchant's and the payment's row locks."""
    from .core.money import format_minor

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
    *,
    payment: Payment,
    amount: int,
    reason: str,
    reason_detail: str,
    requested_by: User,
    actor: User,
) -> Refund:
    from .tasks import submit_refund

    with transaction.atomic():
        refund = refund_create(
            payment=payment, amount=amount, reason=reason, reason_detail=reason_detail, actor=actor
        )
        if refund.requested_by_id != requested_by.pk:
            with _acting(actor):
                refund.requested_by = requested_by
                refund.save()
        transaction.on_commit(lambda: submit_refund.delay(refund.pk), robust=True)
        return refund


def refund_execute_approved(request: ApprovalRequest, approver: User) -> Refund:
    """What approving a REFUND_APPROVAL request does (declared in payments/approvals.py)."""
    payload = request.payload
    return _refund_and_submit(
        payment=Payment.objects.get(pk=int(request.target_id)),
        amount=int(payload["amount"]),
        reason=payload["reason"],
        reason_detail=payload.get("reason_detail", ""),
        requested_by=request.requested_by,
        actor=approver,
    )


def chargeback_accept_request(
    *, chargeback: Chargeback, reason: str, actor: User
) -> ApprovalRequest:
    """Accepting a chargeback gives the money up: one person asks, a second one approves."""
    from .core import approvals

    chargeback.check_transition(current=chargeback.status, target=Chargeback.Status.ACCEPTED)
    return approvals.approval_request(
        action=CHARGEBACK_ACCEPT_APPROVAL,
        target=chargeback,
        requested_by=actor,
        reason=reason,
    )


def chargeback_execute_accept(request: ApprovalRequest, approver: User) -> Chargeback:
    """What approving a CHARGEBACK_ACCEPT_APPROVAL request does (payments/approvals.py)."""
    from .gateways import get_gateway

    chargeback = Chargeback.objects.select_for_update().get(pk=int(request.target_id))
    chargeback.check_transition(current=chargeback.status, target=Chargeback.Status.ACCEPTED)
    get_gateway(chargeback.gateway).accept_dispute(
        dispute_reference=chargeback.gateway_reference,
        idempotency_key=f"chargeback-{chargeback.pk}-accept",
    )
    return chargeback_set_status(
        chargeback=chargeback, status=Chargeback.Status.ACCEPTED, actor=approver
    )


# --- Chargeback evidence -------------------------------------------------------------------


class EvidenceAlreadySubmitted(PaymentsError):
    http_status = 409

    def __init__(self) -> None:
        super().__init__("The evidence was submitted; it can no longer be changed.")


def evidence_save_draft(*, chargeback: Chargeback, text: str, actor: User) -> ChargebackEvidence:
    with transaction.atomic(), _acting(actor):
        chargeback = Chargeback.objects.select_for_update().get(pk=chargeback.pk)
        evidence, _ = ChargebackEvidence.objects.get_or_create(chargeback=chargeback)
        if evidence.is_submitted:
            raise EvidenceAlreadySubmitted
        evidence.text, evidence.updated_by = text, actor
        evidence.save()
        return evidence


def evidence_add_file(*, chargeback: Chargeback, upload: Any, actor: User) -> EvidenceFile:
    from .core.uploads import check_upload

    checked = check_upload(upload)
    with transaction.atomic(), _acting(actor):
        chargeback = Chargeback.objects.select_for_update().get(pk=chargeback.pk)
        evidence, _ = ChargebackEvidence.objects.get_or_create(chargeback=chargeback)
        if evidence.is_submitted:
            raise EvidenceAlreadySubmitted
        stored = EvidenceFile(
            evidence=evidence,
            original_name=checked.display_name,
            sha256=checked.sha256,
            size=checked.size,
            content_type=checked.content_type,
            uploaded_by=actor,
        )
        stored.file.save("upload", upload, save=False)
        stored.save()
        return stored


def evidence_submit(*, chargeback: Chargeback, actor: User) -> ChargebackEvidence:
    """Send the evidence to the gateway, once; the chargeback goes under review."""
    from .gateways import get_gateway

    with transaction.atomic(), _acting(actor):
        chargeback = Chargeback.objects.select_for_update().get(pk=chargeback.pk)
        evidence = (
            ChargebackEvidence.objects.select_for_update().filter(chargeback=chargeback).first()
        )
        if evidence is None or not evidence.text.strip():
            raise PaymentsError("Write the evidence before submitting it.")
        if evidence.is_submitted:
            raise EvidenceAlreadySubmitted
        chargeback.check_transition(
            current=chargeback.status, target=Chargeback.Status.UNDER_REVIEW
        )
        files = [f"- {f.original_name} (sha256 {f.sha256})" for f in evidence.files.all()]
        text = evidence.text + ("\n\nDocuments held:\n" + "\n".join(files) if files else "")
        # Holding the row lock across this call keeps a second submit out; the key makes a
        # retry after a lost answer harmless at Stripe.
        get_gateway(chargeback.gateway).submit_dispute_evidence(
            dispute_reference=chargeback.gateway_reference,
            text=text,
            idempotency_key=f"chargeback-{chargeback.pk}-evidence",
        )
        evidence.submitted_by, evidence.submitted_at = actor, timezone.now()
        evidence.save()
        chargeback.transition_to(Chargeback.Status.UNDER_REVIEW)
        chargeback.save()
        return evidence


def chargeback_assign(*, chargeback: Chargeback, assignee: User | None, actor: User) -> Chargeback:
    with transaction.atomic(), _acting(actor):
        chargeback = Chargeback.objects.select_for_update().get(pk=chargeback.pk)
        chargeback.assignee = assignee
        chargeback.save()
        return chargeback
