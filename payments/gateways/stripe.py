"""Stripe through the official SDK's StripeClient and PaymentIntents.

Every write carries an idempotency key derived from our own row (e.g. "refund-42"), so a Celery
retry or a resumed request can never charge or refund twice: the SDK's automatic keys only
cover its own network retries.
"""

from __future__ import annotations

import datetime
from typing import Any

import stripe
from django.conf import settings

from . import base

PAYMENT_STATUS = {
    "requires_payment_method": "pending",
    "requires_confirmation": "pending",
    "requires_action": "pending",
    "processing": "processing",
    "requires_capture": "authorized",
    "succeeded": "captured",
    "canceled": "canceled",
}
REFUND_STATUS = {
    "pending": "pending",
    "requires_action": "pending",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}

DISPUTE_STATUS = {
    "warning_needs_response": "needs_response",
    "needs_response": "needs_response",
    "warning_under_review": "under_review",
    "under_review": "under_review",
    "warning_closed": "won",
    "won": "won",
    "lost": "lost",
}


def _call(method: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return method(*args, **kwargs)
    except stripe.CardError as exc:
        raise base.GatewayDeclined(
            exc.user_message or str(exc), gateway="stripe", code=exc.code or ""
        ) from exc
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise base.GatewayUnavailable(str(exc.user_message or exc), gateway="stripe") from exc
    except stripe.StripeError as exc:
        if (exc.http_status or 0) >= 500:
            raise base.GatewayUnavailable(str(exc.user_message or exc), gateway="stripe") from exc
        raise base.GatewayError(
            exc.user_message or str(exc), gateway="stripe", code=getattr(exc, "code", "") or ""
        ) from exc


def _field(obj: Any, key: str) -> Any:
    # Webhook payloads are dicts; SDK answers are StripeObjects, which are not.
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def object_id(value: Any) -> str:
    """An id whether Stripe sent the object expanded or as its id."""
    found = value if isinstance(value, str) else _field(value, "id") if value else None
    return found if isinstance(found, str) else ""


def our_refund_id(metadata: Any) -> int | None:
    value = _field(metadata, "refund_id") if metadata else None
    return int(value) if isinstance(value, str) and value.isdigit() else None


def gateway_refund(refund: Any) -> base.GatewayRefund:
    return base.GatewayRefund(
        reference=refund.id,
        amount=refund.amount,
        status=REFUND_STATUS.get(refund.status, "pending"),
        refund_id=our_refund_id(getattr(refund, "metadata", None)),
    )


def _metadata(obj: Any) -> dict[str, Any]:
    return (obj.to_dict().get("metadata") if hasattr(obj, "to_dict") else None) or {}


class StripeGateway(base.PaymentGateway):
    name = "stripe"

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    @classmethod
    def from_settings(cls) -> StripeGateway:
        if not settings.STRIPE_API_KEY:
            raise base.GatewayNotConfigured(
                "Stripe is disabled: STRIPE_API_KEY is not set.", gateway="stripe"
            )
        options: dict[str, Any] = {"max_network_retries": 2}
        if settings.STRIPE_API_BASE:
            options["base_addresses"] = {"api": settings.STRIPE_API_BASE}
        return cls(stripe.StripeClient(api_key=settings.STRIPE_API_KEY, **options))

    def _payment(self, intent: Any, card: tuple[str, str] = ("", "")) -> base.GatewayPayment:
        status = PAYMENT_STATUS.get(intent.status, "pending")
        received = getattr(intent, "amount_received", None)
        captured = (
            received if received is not None else (intent.amount if status == "captured" else 0)
        )
        return base.GatewayPayment(
            reference=intent.id,
            status=status,
            amount=intent.amount,
            currency=intent.currency.upper(),
            captured_amount=captured,
            card_brand=card[0],
            card_last4=card[1],
            # Only the charge that holds the money: a failed attempt's charge is not the one
            # a dispute or refund will name.
            charge_reference=(
                object_id(getattr(intent, "latest_charge", None))
                if status in ("captured", "authorized")
                else ""
            ),
        )

    def _card(self, intent: Any) -> tuple[str, str]:
        charge = getattr(intent, "latest_charge", None)
        method_id = getattr(charge, "payment_method", None) if charge is not None else None
        if not isinstance(method_id, str):
            return ("", "")
        method = _call(self.client.v1.payment_methods.retrieve, method_id)
        card = getattr(method, "card", None)
        return (card.brand, card.last4) if card is not None else ("", "")

    def _authorize(self, request: base.ChargeRequest) -> base.GatewayPayment:
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "payment_method": request.payment_method,
            "confirm": True,
            "capture_method": "automatic" if request.capture else "manual",
        }
        if request.payment_id is not None:
            # Our row's id on the intent: reconcile finds an intent whose answer was lost.
            params["metadata"] = {"payment_id": str(request.payment_id)}
        intent = _call(
            self.client.v1.payment_intents.create,
            params,
            {"idempotency_key": request.idempotency_key},
        )
        return self._payment(intent, self._card(intent))

    def capture(
        self, *, reference: str, amount: int | None, idempotency_key: str
    ) -> base.GatewayPayment:
        params = {"amount_to_capture": amount} if amount is not None else {}
        intent = _call(
            self.client.v1.payment_intents.capture,
            reference,
            params,
            {"idempotency_key": idempotency_key},
        )
        return self._payment(intent)

    def cancel(self, *, reference: str, idempotency_key: str) -> base.GatewayPayment:
        intent = _call(
            self.client.v1.payment_intents.cancel,
            reference,
            {},
            {"idempotency_key": idempotency_key},
        )
        return self._payment(intent)

    def _refund(self, request: base.RefundRequest) -> base.GatewayRefund:
        params: dict[str, Any] = {"payment_intent": request.reference, "amount": request.amount}
        if request.refund_id is not None:
            # Our id travels with the refund, so its webhooks find our row even when they
            # arrive before we have stored Stripe's reference.
            params["metadata"] = {"refund_id": str(request.refund_id)}
        refund = _call(
            self.client.v1.refunds.create, params, {"idempotency_key": request.idempotency_key}
        )
        return gateway_refund(refund)

    def refunds_for_payment(self, *, reference: str) -> list[base.GatewayRefund]:
        """Every refund of a PaymentIntent, as Stripe holds them now (since API version
        2022-11-15 a charge no longer embeds its refunds)."""
        page = _call(self.client.v1.refunds.list, {"payment_intent": reference, "limit": 100})
        return _call(lambda: [gateway_refund(refund) for refund in page.auto_paging_iter()])

    def payment_reference_for_charge(self, *, charge_reference: str) -> str:
        """The PaymentIntent a charge belongs to (disputes may name only the charge)."""
        charge = _call(self.client.v1.charges.retrieve, charge_reference)
        return object_id(getattr(charge, "payment_intent", None))

    def fetch(self, *, reference: str) -> base.GatewayPayment:
        return self._payment(_call(self.client.v1.payment_intents.retrieve, reference))

    def find_payment(
        self, *, payment_id: int, order_id: str, created_after: datetime.datetime
    ) -> base.GatewayPayment | None:
        """The intent carrying metadata payment_id. Listed, not searched: the search API's
        index lags by up to a minute, and a retry comes sooner. Stripe lists newest first, so
        the walk stops at the first intent older than the window."""
        since = int(created_after.timestamp())
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = _call(self.client.v1.payment_intents.list, params)
            for intent in page.data:
                if _metadata(intent).get("payment_id") == str(payment_id):
                    return self._payment(intent, self._card(intent))
                if intent.created < since:
                    return None
            if not page.has_more or not page.data:
                return None
            params["starting_after"] = page.data[-1].id

    def list_refunds(self, *, reference: str, currency: str) -> list[base.GatewayRefundSeen]:
        found: list[base.GatewayRefundSeen] = []
        params: dict[str, Any] = {"payment_intent": reference, "limit": 100}
        while True:
            page = _call(self.client.v1.refunds.list, params)
            for refund in page.data:
                ours = str(_metadata(refund).get("refund_id") or "")
                found.append(
                    base.GatewayRefundSeen(
                        reference=refund.id,
                        amount=refund.amount,
                        status=REFUND_STATUS.get(refund.status, "pending"),
                        our_id=int(ours) if ours.isdigit() else None,
                    )
                )
            if not page.has_more or not page.data:
                return found
            params["starting_after"] = page.data[-1].id

    def fetch_dispute(self, *, dispute_reference: str) -> base.GatewayDispute:
        dispute = _call(self.client.v1.disputes.retrieve, dispute_reference)
        return base.GatewayDispute(
            reference=dispute.id, status=DISPUTE_STATUS.get(dispute.status, "needs_response")
        )

    def submit_dispute_evidence(
        self, *, dispute_reference: str, text: str, idempotency_key: str
    ) -> None:
        _call(
            self.client.v1.disputes.update,
            dispute_reference,
            {"evidence": {"uncategorized_text": text}, "submit": True},
            {"idempotency_key": idempotency_key},
        )

    def accept_dispute(self, *, dispute_reference: str, idempotency_key: str) -> None:
        _call(
            self.client.v1.disputes.close,
            dispute_reference,
            {},
            {"idempotency_key": idempotency_key},
        )
