"""What each gateway event does. Handlers read the stored event and call services; they run
inside the processing transaction and raise to have the event retried.

An event is applied by the status of the object it carries and by its creation time, never by
its type alone: a late `payment_intent.payment_failed` (created before the `succeeded` we
applied) changes nothing. When an event does not carry what we need (a charge of API version
2022-11-15 or later no longer embeds its refunds; a dispute may name only the charge), the
handler reads the current object from the gateway through its adapter, as Stripe advises:
treat the event as a notification. Those reads happen before any payment row is locked; the
event's own row stays locked, which keeps a second run of the same event waiting.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any, cast

from payments.services.disputes import chargeback_apply_gateway_state
from payments.services.gateway_reports import GatewayStateNeedsAttention, payment_held
from payments.services.payments import (
    payment_apply_gateway_state,
    payment_set_charge_reference,
    payment_settle_from_gateway,
)
from payments.services.payout_accounts import micro_deposit_apply_rail_state
from payments.services.refunds import refund_apply_gateway_state

from ..exceptions import PaymentsError
from ..gateways.stripe import PAYMENT_STATUS as STRIPE_PAYMENT_STATUS
from ..gateways.stripe import object_id, our_refund_id
from ..models import Chargeback, Payment, Refund, WebhookEvent
from ..rails import RailCreditReport
from ..selectors import PaymentNotFound, payment_by_gateway_reference
from .verify import parse_braintree

log = logging.getLogger(__name__)


Handler = Callable[[WebhookEvent], None]


# Statuses in which the money has reached us: a gateway reporting one of them for a payment
# we hold as canceled (or the reverse, on Braintree) is a difference for a person. A failed
# Stripe attempt is not final (see Payment.STATUS_TRANSITIONS): a newer success applies.
MONEY_TAKEN = frozenset(
    {Payment.Status.CAPTURED, Payment.Status.PARTIALLY_REFUNDED, Payment.Status.REFUNDED}
)


MONEY_NOT_TAKEN = {
    "stripe": frozenset({Payment.Status.CANCELED}),
    "sandbox": frozenset({Payment.Status.CANCELED}),
    "braintree": frozenset({Payment.Status.FAILED, Payment.Status.CANCELED}),
}


def event_time(event: WebhookEvent) -> datetime.datetime | None:
    """When the gateway created the event: stored on receipt, else read from the payload."""
    if event.event_created_at is not None:
        return event.event_created_at
    payload = event.payload if isinstance(event.payload, dict) else {}
    created = payload.get("created")  # Stripe: unix seconds
    if isinstance(created, int) and not isinstance(created, bool) and created > 0:
        return datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    stamp = payload.get("timestamp")  # Braintree: the notification's timestamp, ISO 8601
    if isinstance(stamp, str) and stamp:
        try:
            moment = datetime.datetime.fromisoformat(stamp)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
    return None


def _refuse_taken_money_for_lost_payment(payment: Payment, status: str, gateway: str) -> None:
    if status == Payment.Status.CAPTURED and payment.status in MONEY_NOT_TAKEN[gateway]:
        log.warning("%s captured payment %s which is %s here", gateway, payment.pk, payment.status)
        raise GatewayStateNeedsAttention(
            f"{gateway} reports payment {payment.pk} ({payment.gateway_reference}) captured, "
            f"but it is {payment.status} here: the money was taken. It stays {payment.status} "
            "until a person decides (refund it at the gateway, or correct our record)."
        )


def _apply_payment_report(
    event: WebhookEvent,
    payment: Payment,
    status: str,
    *,
    captured: Any,
    charge_reference: str = "",
) -> None:
    """Apply the status (and captured amount, when the report gives a positive one) a gateway
    reports for a payment, unless it says money was taken for a payment lost here."""
    _refuse_taken_money_for_lost_payment(payment, status, event.provider)
    payment_apply_gateway_state(
        payment=payment,
        status=status,
        captured_amount=captured if isinstance(captured, int) and captured > 0 else None,
        event_at=event_time(event),
        charge_reference=charge_reference,
    )


def _payment(gateway: str, reference: str) -> Payment:
    """The payment a gateway's reference names: the row a batch holds locked, else read."""
    held = payment_held(gateway=gateway, reference=reference)
    return held or payment_by_gateway_reference(gateway=gateway, reference=reference)


def payment_named(event: WebhookEvent) -> tuple[str, str] | None:
    """(gateway, reference) of the payment an event is about, when the payload names it
    directly, for a batch to lock up front; None when only its handler can tell."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    obj = (payload.get("data") or {}).get("object") if event.provider != "braintree" else None
    if not isinstance(obj, dict):
        return None
    if event.provider == "stripe":
        if event.event_type == "charge.refunded":
            return None  # its handler may ask Stripe first, before the payment is locked
        if event.event_type in STRIPE_INTENT_EVENTS:
            return ("stripe", str(obj.get("id") or ""))
        return ("stripe", object_id(obj.get("payment_intent")))
    if event.provider == "sandbox":
        if event.event_type.startswith("payment."):
            return ("sandbox", str(obj.get("id") or ""))
        return ("sandbox", str(obj.get("payment") or ""))
    return None


def refund_named(event: WebhookEvent) -> str:
    """The gateway's reference of the refund an event reports, when its payload names it
    directly ("" otherwise), for a batch to look for up front."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    obj = (payload.get("data") or {}).get("object") if event.provider != "braintree" else None
    if not isinstance(obj, dict):
        return ""
    named = payment_named(event)
    if (event.provider, event.event_type) in REFUND_EVENTS and named is not None and named[1]:
        # Only with its payment, which the batch locks first, as every service does.
        return str(obj.get("id") or "")
    return ""


STRIPE_INTENT_EVENTS = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    "payment_intent.amount_capturable_updated",
]


STRIPE_REFUND_EVENTS = [
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
]


STRIPE_DISPUTE_EVENTS = [
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
]


STRIPE_REFUND_STATUS = {
    "pending": Refund.Status.PENDING,
    "requires_action": Refund.Status.PENDING,
    "succeeded": Refund.Status.SUCCEEDED,
    "failed": Refund.Status.FAILED,
    "canceled": Refund.Status.CANCELED,
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
    return cast(dict[str, Any], event.payload["data"]["object"])  # verified on receive


def stripe_intent_status(intent: dict[str, Any]) -> str:
    """Our status for a PaymentIntent as Stripe reports it. A failed attempt leaves the intent
    in requires_payment_method with its last_payment_error: that is our failed."""
    status = intent.get("status") or ""
    if status == "requires_payment_method" and intent.get("last_payment_error"):
        return Payment.Status.FAILED
    return STRIPE_PAYMENT_STATUS.get(status, Payment.Status.PENDING)


def _intent_charge(intent: dict[str, Any]) -> str:
    """The charge that holds an intent's money: `latest_charge` since 2022-11-15, the
    embedded `charges` list before."""
    if intent.get("status") not in ("succeeded", "requires_capture"):
        return ""
    latest = object_id(intent.get("latest_charge"))
    if latest:
        return latest
    charges = intent.get("charges")
    for charge in (charges.get("data") if isinstance(charges, dict) else None) or []:
        if isinstance(charge, dict) and charge.get("status") == "succeeded":
            return object_id(charge)
    return ""


def _stripe_payment(obj: dict[str, Any], *, charge: str = "") -> Payment:
    """The payment an object belongs to: by its payment_intent, else by the charge it names
    (our stored charge id, else the charge read from Stripe, whose id we then keep)."""
    intent = object_id(obj.get("payment_intent"))
    charge = charge or object_id(obj.get("charge"))
    if intent:
        payment = _payment("stripe", intent)
    elif charge:
        found = Payment.objects.filter(gateway="stripe", charge_reference=charge).first()
        if found is not None:
            return found
        from ..gateways import GatewayError, GatewayUnavailable, get_gateway

        try:
            intent = get_gateway("stripe").payment_reference_for_charge(charge_reference=charge)
        except GatewayUnavailable:
            raise  # retried
        except GatewayError as exc:  # Stripe does not know the charge either
            raise PaymentNotFound(gateway="stripe", reference=charge) from exc
        if not intent:
            raise PaymentNotFound(gateway="stripe", reference=charge)
        payment = _payment("stripe", intent)
    else:
        raise ValueError("the event names neither a payment_intent nor a charge")
    if charge and not payment.charge_reference:
        payment = payment_set_charge_reference(payment=payment, charge_reference=charge)
    return payment


def stripe_payment_intent(event: WebhookEvent) -> None:
    intent = _object(event)
    payment = _payment("stripe", intent["id"])
    status = stripe_intent_status(intent)
    # Stripe documents no failure after success, so a failed report for a captured payment is
    # always an older attempt's: the machine refuses it and nothing changes. A newer success
    # after a failed attempt is applied; a success for a payment we hold as canceled is money
    # taken: that needs a person.
    _apply_payment_report(
        event,
        payment,
        status,
        captured=intent.get("amount_received"),
        charge_reference=_intent_charge(intent),
    )


def _stripe_refund_args(refund: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway_reference": refund["id"],
        "amount": int(refund["amount"]),
        "status": STRIPE_REFUND_STATUS.get(refund.get("status") or "", Refund.Status.PENDING),
        "refund_id": our_refund_id(refund.get("metadata")),
    }


def _embedded_refunds(charge: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The refunds a charge embeds (API versions before 2022-11-15), if the list is whole."""
    embedded = charge.get("refunds")
    if not isinstance(embedded, dict) or embedded.get("has_more"):
        return None
    refunds = [r for r in embedded.get("data") or [] if isinstance(r, dict)]
    holding = sum(
        int(r.get("amount") or 0) for r in refunds if r.get("status") in ("pending", "succeeded")
    )
    if holding < int(charge.get("amount_refunded") or 0):
        return None  # a page short of what the charge says was refunded
    return refunds


def stripe_charge_refunded(event: WebhookEvent) -> None:
    from ..gateways import get_gateway

    charge = _object(event)
    payment = _stripe_payment(charge, charge=charge["id"])
    embedded = _embedded_refunds(charge)
    if embedded is not None:
        reports, event_at = [_stripe_refund_args(r) for r in embedded], event_time(event)
    else:
        # The current shape says only amount_refunded: read the refunds themselves. They are
        # the present state, newer than any event, so no event time goes with them.
        fetched = get_gateway("stripe").refunds_for_payment(reference=payment.gateway_reference)
        reports = [
            {
                "gateway_reference": refund.reference,
                "amount": refund.amount,
                "status": refund.status,
                "refund_id": refund.refund_id,
            }
            for refund in fetched
        ]
        event_at = None
    for report in reports:
        refund_apply_gateway_state(payment=payment, event_at=event_at, **report)


def stripe_refund(event: WebhookEvent) -> None:
    refund = _object(event)
    payment = _stripe_payment(refund)
    refund_apply_gateway_state(
        payment=payment, event_at=event_time(event), **_stripe_refund_args(refund)
    )


def stripe_dispute(event: WebhookEvent) -> None:
    dispute = _object(event)
    payment = _stripe_payment(dispute)
    due = (dispute.get("evidence_details") or {}).get("due_by")
    chargeback_apply_gateway_state(
        payment=payment,
        gateway_reference=dispute["id"],
        reason=dispute.get("reason") or "",
        amount=int(dispute["amount"]),
        status=STRIPE_DISPUTE_STATUS.get(
            dispute.get("status", ""), Chargeback.Status.NEEDS_RESPONSE
        ),
        evidence_due_by=datetime.datetime.fromtimestamp(due, tz=datetime.UTC) if due else None,
        event_at=event_time(event),
    )


STRIPE_HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(STRIPE_INTENT_EVENTS, stripe_payment_intent),
    "charge.refunded": stripe_charge_refunded,
    **dict.fromkeys(STRIPE_REFUND_EVENTS, stripe_refund),
    **dict.fromkeys(STRIPE_DISPUTE_EVENTS, stripe_dispute),
}


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

    return parse_braintree(
        signature=event.payload["bt_signature"], payload=event.payload["bt_payload"]
    )


def braintree_transaction(event: WebhookEvent) -> None:
    from ..gateways.braintree import PAYMENT_STATUS, to_minor

    transaction = _notification(event).transaction
    if event.event_type == "refund_failed" or getattr(transaction, "type", None) == "credit":
        braintree_refund(event, transaction)
        return
    payment = _payment("braintree", transaction.id)
    status = PAYMENT_STATUS.get(transaction.status, Payment.Status.PENDING)
    _refuse_taken_money_for_lost_payment(payment, status, "braintree")
    if status == Payment.Status.FAILED and payment.status in MONEY_TAKEN:
        # settlement_declined is final at Braintree and comes after submit_for_settlement,
        # which is our captured. A captured payment never becomes failed, so it is held here:
        # the event fails with this message until a person settles it with the merchant.
        log.warning("braintree declined settlement of captured payment %s", payment.pk)
        raise GatewayStateNeedsAttention(
            f"Braintree declined the settlement of transaction {transaction.id} "
            f"({transaction.status}) after payment {payment.pk} was captured: the money was "
            f"not received. The payment stays {payment.status} until a person decides."
        )
    payment_apply_gateway_state(
        payment=payment,
        status=status,
        captured_amount=to_minor(transaction.amount, payment.currency)
        if getattr(transaction, "amount", None) is not None
        else None,
        event_at=event_time(event),
    )


def braintree_refund(event: WebhookEvent, transaction: Any) -> None:
    """A refund is a credit transaction at Braintree: ours by its order id, else by its id,
    else one made at Braintree, found through the transaction it refunds."""
    from ..gateways.braintree import REFUND_STATUS, our_refund_id, to_minor

    refund_id = our_refund_id(transaction)
    refunds = Refund.objects.filter(payment__gateway="braintree").select_related("payment")
    refund = refunds.filter(gateway_reference=transaction.id).first() or (
        refunds.filter(pk=refund_id).first() if refund_id is not None else None
    )
    if refund is not None:
        payment = refund.payment
    else:
        refunded = getattr(transaction, "refunded_transaction_id", None)
        if not refunded:
            # Perhaps ours, before refund_submit stored the reference: retried later.
            raise PaymentsError(
                f"No Braintree refund {transaction.id} here, and the notification names "
                "neither our refund (order id) nor the transaction it refunds."
            )
        payment = _payment("braintree", refunded)
    refund_apply_gateway_state(
        payment=payment,
        gateway_reference=transaction.id,
        amount=to_minor(transaction.amount, payment.currency),
        status=REFUND_STATUS.get(transaction.status, Refund.Status.PENDING),
        refund_id=refund_id,
        event_at=event_time(event),
    )


def braintree_dispute(event: WebhookEvent) -> None:
    from ..gateways.braintree import to_minor

    dispute = _notification(event).dispute
    payment = _payment("braintree", dispute.transaction.id)
    # The older dispute shape carries only `amount`; the current one `amount_disputed` too.
    amount = getattr(dispute, "amount_disputed", None) or dispute.amount
    due = getattr(dispute, "reply_by_date", None)
    chargeback_apply_gateway_state(
        payment=payment,
        gateway_reference=dispute.id,
        reason=getattr(dispute, "reason", None) or "",
        amount=to_minor(amount, payment.currency),
        status=BRAINTREE_DISPUTE_STATUS.get(dispute.status, Chargeback.Status.NEEDS_RESPONSE),
        evidence_due_by=(
            datetime.datetime.combine(due, datetime.time(23, 59, 59), tzinfo=datetime.UTC)
            if due
            else None
        ),
        event_at=event_time(event),
    )


def braintree_check(event: WebhookEvent) -> None:
    """Braintree's test notification: verified and stored is all it asks for."""


BRAINTREE_HANDLERS: dict[str, Handler] = {
    "transaction_settled": braintree_transaction,
    "transaction_settlement_declined": braintree_transaction,
    "refund_failed": braintree_transaction,
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


def _sandbox_payment(reference: str, payment_id: str = "") -> Payment:
    """The payment a sandbox object is about. Its event may come before the answer to our own
    call has given the row its reference (in-process delivery runs during that call): then the
    row is found by the id we sent, and given the gateway's reference, card and state as the
    gateway holds them now (read through the adapter, as Stripe advises)."""
    from ..gateways import get_gateway

    try:
        return _payment("sandbox", reference)
    except PaymentNotFound:
        if not payment_id.isdigit():
            raise
    payment = Payment.objects.filter(
        pk=int(payment_id), gateway="sandbox", gateway_reference=""
    ).first()
    if payment is None:
        raise PaymentNotFound(gateway="sandbox", reference=reference)
    return payment_settle_from_gateway(
        payment=payment, result=get_gateway("sandbox").fetch(reference=reference)
    )


def _metadata_id(obj: dict[str, Any], key: str) -> str:
    metadata = obj.get("metadata")
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else ""


def sandbox_payment(event: WebhookEvent) -> None:
    payment_obj = _object(event)
    payment = _sandbox_payment(payment_obj["id"], _metadata_id(payment_obj, "payment_id"))
    status = str(payment_obj.get("status") or Payment.Status.PENDING)
    _apply_payment_report(event, payment, status, captured=payment_obj.get("amount_captured"))


def sandbox_refund(event: WebhookEvent) -> None:
    refund = _object(event)
    ours = _metadata_id(refund, "refund_id")
    refund_apply_gateway_state(
        payment=_sandbox_payment(refund["payment"]),
        gateway_reference=refund["id"],
        amount=int(refund["amount"]),
        status=str(refund.get("status") or Refund.Status.PENDING),
        refund_id=int(ours) if ours.isdigit() else None,
        event_at=event_time(event),
    )


def sandbox_dispute(event: WebhookEvent) -> None:
    dispute = _object(event)
    due = dispute.get("evidence_due_by")
    chargeback_apply_gateway_state(
        payment=_sandbox_payment(dispute["payment"]),
        gateway_reference=dispute["id"],
        reason=str(dispute.get("reason") or ""),
        amount=int(dispute["amount"]),
        status=str(dispute.get("status") or Chargeback.Status.NEEDS_RESPONSE),
        evidence_due_by=datetime.datetime.fromtimestamp(due, tz=datetime.UTC)
        if isinstance(due, int)
        else None,
        event_at=event_time(event),
    )


def sandbox_credit(event: WebhookEvent) -> None:
    """The sandbox bank rail's report on a micro-deposit (payments/rails/sandbox.py)."""
    credit = _object(event)
    micro_deposit_apply_rail_state(
        rail="sandbox",
        report=RailCreditReport(
            reference=str(credit["id"]),
            status=str(credit["status"]),
            occurred_at=event_time(event),
            return_reason=str(credit.get("return_reason") or ""),
        ),
    )


# The sandbox speaks our own statuses (payments/gateways/sandbox.py), so no mapping is needed.
SANDBOX_HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(
        ["payment.authorized", "payment.captured", "payment.failed", "payment.canceled"],
        sandbox_payment,
    ),
    **dict.fromkeys(["refund.succeeded", "refund.failed"], sandbox_refund),
    **dict.fromkeys(["dispute.created", "dispute.updated", "dispute.closed"], sandbox_dispute),
    **dict.fromkeys(["credit.sent", "credit.settled", "credit.returned"], sandbox_credit),
}


# The events whose object is one refund (its id the gateway's refund reference).
REFUND_EVENTS = frozenset(
    [("stripe", kind) for kind in STRIPE_REFUND_EVENTS]
    + [("sandbox", "refund.succeeded"), ("sandbox", "refund.failed")]
)


HANDLERS: dict[str, dict[str, Handler]] = {
    "stripe": STRIPE_HANDLERS,
    "braintree": BRAINTREE_HANDLERS,
    "sandbox": SANDBOX_HANDLERS,
}


def handler_for(event: WebhookEvent) -> Handler | None:
    return HANDLERS.get(event.provider, {}).get(event.event_type)
