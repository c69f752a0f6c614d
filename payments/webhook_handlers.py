"""What each gateway event does. Handlers read the stored event and call services; they run
inside the processing transaction and raise to have the event retried."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from . import services
from .models import Chargeback, Payment, Refund, WebhookEvent
from .selectors import payment_by_gateway_reference

Handler = Callable[[WebhookEvent], None]


# --- Stripe -------------------------------------------------------------------------------

STRIPE_INTENT_OUTCOME = {
    "payment_intent.succeeded": Payment.Status.CAPTURED,
    "payment_intent.payment_failed": Payment.Status.FAILED,
    "payment_intent.canceled": Payment.Status.CANCELED,
    "payment_intent.processing": Payment.Status.PROCESSING,
}
STRIPE_REFUND_STATUS = {
    "pending": "pending",
    "requires_action": "pending",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}
STRIPE_DISPUTE_STATUS = {
    "warning_needs_response": Chargeback.Status.NEEDS_RESPONSE,
    "needs_response": Chargeback.Status.NEEDS_RESPONSE,
    "warning_under_review": Chargeback.Status.UNDER_REVIEW,
    "under_review": Chargeback.Status.UNDER_REVIEW,
    "warning_closed": Chargeback.Status.WON,
    "won": Chargeback.Status.WON,
    "lost": Chargeback.Status.LOST,
}


def _object(event: WebhookEvent) -> dict[str, Any]:
    return event.payload["data"]["object"]


def _stripe_intent_id(obj: dict[str, Any]) -> str:
    intent = obj.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    if not isinstance(intent, str) or not intent:
        raise ValueError("the event names no payment_intent")
    return intent


def stripe_payment_intent(event: WebhookEvent) -> None:
    intent = _object(event)
    payment = payment_by_gateway_reference(gateway="stripe", reference=intent["id"])
    services.payment_apply_gateway_state(
        payment=payment,
        status=STRIPE_INTENT_OUTCOME[event.event_type],
        captured_amount=intent.get("amount_received") or None,
    )


def stripe_charge_refunded(event: WebhookEvent) -> None:
    charge = _object(event)
    payment = payment_by_gateway_reference(gateway="stripe", reference=_stripe_intent_id(charge))
    for refund in (charge.get("refunds") or {}).get("data", []):
        services.refund_apply_gateway_state(
            payment=payment,
            gateway_reference=refund["id"],
            amount=int(refund["amount"]),
            status=STRIPE_REFUND_STATUS.get(refund.get("status", ""), Refund.Status.PENDING),
        )


def stripe_refund_updated(event: WebhookEvent) -> None:
    refund = _object(event)
    payment = payment_by_gateway_reference(gateway="stripe", reference=_stripe_intent_id(refund))
    services.refund_apply_gateway_state(
        payment=payment,
        gateway_reference=refund["id"],
        amount=int(refund["amount"]),
        status=STRIPE_REFUND_STATUS.get(refund.get("status", ""), Refund.Status.PENDING),
    )


def stripe_dispute(event: WebhookEvent) -> None:
    dispute = _object(event)
    payment = payment_by_gateway_reference(gateway="stripe", reference=_stripe_intent_id(dispute))
    due = (dispute.get("evidence_details") or {}).get("due_by")
    services.chargeback_apply_gateway_state(
        payment=payment,
        gateway_reference=dispute["id"],
        reason=dispute.get("reason") or "",
        amount=int(dispute["amount"]),
        status=STRIPE_DISPUTE_STATUS.get(
            dispute.get("status", ""), Chargeback.Status.NEEDS_RESPONSE
        ),
        evidence_due_by=datetime.datetime.fromtimestamp(due, tz=datetime.UTC) if due else None,
    )


STRIPE_HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(STRIPE_INTENT_OUTCOME, stripe_payment_intent),
    "charge.refunded": stripe_charge_refunded,
    "charge.refund.updated": stripe_refund_updated,
    **dict.fromkeys(
        [
            "charge.dispute.created",
            "charge.dispute.updated",
            "charge.dispute.closed",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.funds_reinstated",
        ],
        stripe_dispute,
    ),
}


# --- Braintree ----------------------------------------------------------------------------

BRAINTREE_DISPUTE_STATUS = {
    "open": Chargeback.Status.NEEDS_RESPONSE,
    "disputed": Chargeback.Status.UNDER_REVIEW,
    "under_review": Chargeback.Status.UNDER_REVIEW,
    "won": Chargeback.Status.WON,
    "lost": Chargeback.Status.LOST,
    "accepted": Chargeback.Status.ACCEPTED,
    "auto_accepted": Chargeback.Status.ACCEPTED,
    "expired": Chargeback.Status.EXPIRED,
}


def _notification(event: WebhookEvent) -> Any:
    from .webhooks import parse_braintree

    return parse_braintree(
        signature=event.payload["bt_signature"], payload=event.payload["bt_payload"]
    )


def braintree_transaction(event: WebhookEvent) -> None:
    transaction = _notification(event).transaction
    payment = payment_by_gateway_reference(gateway="braintree", reference=transaction.id)
    status = (
        Payment.Status.CAPTURED
        if event.event_type == "transaction_settled"
        else Payment.Status.FAILED
    )
    services.payment_apply_gateway_state(payment=payment, status=status)


def braintree_dispute(event: WebhookEvent) -> None:
    from .gateways.braintree import to_minor

    dispute = _notification(event).dispute
    payment = payment_by_gateway_reference(gateway="braintree", reference=dispute.transaction.id)
    amount = dispute.amount_disputed or dispute.amount
    due = dispute.reply_by_date
    services.chargeback_apply_gateway_state(
        payment=payment,
        gateway_reference=dispute.id,
        reason=dispute.reason or "",
        amount=to_minor(amount, payment.currency),
        status=BRAINTREE_DISPUTE_STATUS.get(dispute.status, Chargeback.Status.NEEDS_RESPONSE),
        evidence_due_by=(
            datetime.datetime.combine(due, datetime.time(23, 59, 59), tzinfo=datetime.UTC)
            if due
            else None
        ),
    )


def braintree_check(event: WebhookEvent) -> None:
    """Braintree's test notification: verified and stored is all it asks for."""


BRAINTREE_HANDLERS: dict[str, Handler] = {
    "transaction_settled": braintree_transaction,
    "transaction_settlement_declined": braintree_transaction,
    **dict.fromkeys(
        [
            "dispute_opened",
            "dispute_lost",
            "dispute_won",
            "dispute_accepted",
            "dispute_auto_accepted",
            "dispute_disputed",
            "dispute_expired",
            "dispute_under_review",
        ],
        braintree_dispute,
    ),
    "check": braintree_check,
}


def handler_for(event: WebhookEvent) -> Handler | None:
    handlers = STRIPE_HANDLERS if event.provider == "stripe" else BRAINTREE_HANDLERS
    return handlers.get(event.event_type)
