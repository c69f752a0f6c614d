"""Every write to a payment: recorded, authorized and captured through its gateway, cancelled,
settled from the gateway's reports (webhooks, reconciliation).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from django.db import transaction
from django.utils import timezone

from audits import context
from audits.receivers import fields_changed

from ..core.records import check_keywords, create_valid
from ..exceptions import (
    IdempotencyKeyReused,
    MerchantCannotTakePayments,
    PaymentsError,
)
from ..fraud.engine import fraud_score_payment
from ..models import (
    Merchant,
    Payment,
)
from .gateway_reports import is_newer, is_stale, payment_locked
from .merchants import merchant_flag_for_review

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from ..gateways import GatewayPayment


class NewPayment(TypedDict):
    """What every new payment names; the optional fields below are "" when not given."""

    merchant: Merchant
    gateway: str
    amount: int
    currency: str


class PaymentDetails(NewPayment, total=False):
    customer_email: str
    description: str
    # The caller's Idempotency-Key hashed in its scope: the payment already recorded under that
    # key in the last CLIENT_KEY_TTL stands instead of a second one.
    client_key: str
    # The gateway's fingerprint of the card, when the caller knows it (the fraud rules use it).
    card_fingerprint: str


class RecordedPayment(PaymentDetails, total=False):
    """A payment the gateway took already: its reference and card."""

    gateway_reference: str
    card_brand: str
    card_last4: str


def payment_record(*, actor: User | None = None, **payment: Unpack[RecordedPayment]) -> Payment:
    """A new payment for an active merchant, in status pending; with a `client_key`, the
    payment already recorded under that key instead of a second one. A new payment is scored by
    the fraud rules in the same transaction."""
    return _payment_record_once(actor=actor, **payment)[0]


# A caller's key names one payment for as long as Stripe keeps an idempotency key; after that
# the key is free again (the old row gives it up), as the API's saved answers are.
CLIENT_KEY_TTL = timedelta(hours=24)


def _payment_record_once(
    *, actor: User | None, **fields: Unpack[RecordedPayment]
) -> tuple[Payment, bool]:
    """(payment, whether it was created now)."""
    check_keywords(fields, RecordedPayment)
    card_fingerprint = fields.pop("card_fingerprint", "")
    client_key = fields.get("client_key", "")
    fields["currency"] = fields["currency"].upper()
    asked = (fields["gateway"], fields["amount"], fields["currency"])
    with transaction.atomic(), context.acting(actor):
        # The merchant's row lock also orders two creates racing with one client key: the
        # second finds the first's row.
        merchant = fields["merchant"] = Merchant.objects.select_for_update().get(
            pk=fields["merchant"].pk
        )
        if not merchant.can_take_payments:
            raise MerchantCannotTakePayments(merchant_id=merchant.pk, status=merchant.status)
        if client_key:
            earlier = (
                Payment.objects.select_for_update()
                .filter(merchant=merchant, client_key=client_key)
                .first()
            )
            if earlier is not None and earlier.created_at > timezone.now() - CLIENT_KEY_TTL:
                if (earlier.gateway, earlier.amount, earlier.currency) != asked:
                    raise IdempotencyKeyReused(payment_id=earlier.pk)
                return earlier, False
            if earlier is not None:
                earlier.client_key = ""
                earlier.save()
        payment = create_valid(Payment(**fields))
        scored = fraud_score_payment(payment=payment, card_fingerprint=card_fingerprint)
        if scored.flags_merchant:
            merchant_flag_for_review(merchant=merchant, reason=scored.flag_reason)
        return payment, True


def payment_set_status(
    *, payment: Payment, status: str, captured_amount: int | None = None, actor: User | None = None
) -> Payment:
    """Move a payment along its status machine; capturing records the captured amount
    (the whole amount unless a partial capture is given)."""
    with transaction.atomic(), context.acting(actor):
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        _move_payment(payment, status, captured_amount)
        return payment


def _move_payment(payment: Payment, status: str, captured_amount: int | None) -> None:
    payment.transition_to(status)
    if status == Payment.Status.CAPTURED:
        payment.captured_amount = payment.amount if captured_amount is None else captured_amount
        payment.full_clean()
    payment.save()


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
        payment = payment_locked(payment.pk)
        if is_stale(payment.gateway_event_at, event_at):
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
                # A capture changes the status and the amounts only: the merchant and the
                # references (whose uniqueness the database holds) are not validated again,
                # which would cost three queries and four savepoints per event.
                payment.full_clean(exclude=["merchant", "gateway_reference", "client_key"])
            changed = moved = True
        if (moved or payment.status == status) and is_newer(payment.gateway_event_at, event_at):
            payment.gateway_event_at, changed = event_at, True
        if changed:
            payment.save(update_fields=fields_changed(payment))
        return moved


def payment_set_charge_reference(*, payment: Payment, charge_reference: str) -> Payment:
    """Remember the gateway's charge id once we learn it: disputes (and refunds of old API
    versions) may name only the charge."""
    with transaction.atomic():
        payment = payment_locked(payment.pk)
        if charge_reference and not payment.charge_reference:
            payment.charge_reference = charge_reference
            payment.save()
        return payment


def payment_authorize(
    *,
    payment_method: str,
    capture: bool = True,
    actor: User | None = None,
    **new: Unpack[PaymentDetails],
) -> Payment:
    """Charge (or authorize) through the gateway. A retry with the same `client_key` reuses
    the first attempt's row and so its gateway idempotency key (`payment-<id>`); it asks the
    gateway again only while that row has no gateway reference, and first looks there for what
    the lost attempt did, not relying on the gateway's own key replay (Braintree has none)."""
    from ..gateways import GatewayDeclined, get_gateway

    check_keywords(new, PaymentDetails)
    adapter = get_gateway(new["gateway"])  # refuses before writing anything if not configured
    payment, created = _payment_record_once(actor=actor, **new)
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
                amount=payment.amount,
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
    with transaction.atomic(), context.acting(actor):
        payment = payment_locked(payment.pk)
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
    from ..gateways import get_gateway

    payment.check_transition(current=payment.status, target=Payment.Status.CAPTURED)
    result = get_gateway(payment.gateway).capture(
        reference=payment.gateway_reference,
        amount=amount,
        idempotency_key=f"payment-{payment.pk}-capture",
    )
    captured = amount if amount is not None else (result.captured_amount or payment.amount)
    with context.acting(actor):
        payment_apply_gateway_state(
            payment=payment, status=Payment.Status.CAPTURED, captured_amount=captured
        )
    return Payment.objects.get(pk=payment.pk)


def payment_cancel(*, payment: Payment, actor: User | None = None) -> Payment:
    from ..gateways import get_gateway

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
    with context.acting(actor):
        payment_apply_gateway_state(payment=payment, status=Payment.Status.CANCELED)
    return Payment.objects.get(pk=payment.pk)
