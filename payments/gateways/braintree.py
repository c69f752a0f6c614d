"""Braintree through the official SDK's gateway object.

Braintree has no idempotency keys. Writes carry our key as their order id, and before a retried
write we look for what the first attempt may have done (a refund with that order id on the
transaction, a capture or void already applied), so a retry never refunds or captures twice.
A sale whose answer was lost is found by `manage.py reconcile` through its order id.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import braintree
from django.conf import settings

from ..core.money import exponent
from . import base

PAYMENT_STATUS = {
    "authorizing": "pending",
    "authorized": "authorized",
    "submitted_for_settlement": "captured",
    "settling": "captured",
    "settlement_pending": "captured",
    "settled": "captured",
    "settlement_confirmed": "captured",
    "voided": "canceled",
    "authorization_expired": "canceled",
    "processor_declined": "failed",
    "gateway_rejected": "failed",
    "failed": "failed",
    "settlement_declined": "failed",
}
REFUND_STATUS = {
    **{
        k: "pending"
        for k in (
            "authorizing",
            "authorized",
            "submitted_for_settlement",
            "settling",
            "settlement_pending",
        )
    },
    "settled": "succeeded",
    "settlement_confirmed": "succeeded",
    "voided": "canceled",
    "processor_declined": "failed",
    "gateway_rejected": "failed",
    "failed": "failed",
    "settlement_declined": "failed",
}
DISPUTE_STATUS = {
    "open": "needs_response",
    "disputed": "under_review",
    "under_review": "under_review",
    "won": "won",
    "lost": "lost",
    "accepted": "accepted",
    "auto_accepted": "accepted",
    "expired": "expired",
}

ENVIRONMENTS = {
    "sandbox": braintree.Environment.Sandbox,
    "production": braintree.Environment.Production,
}


def to_decimal(amount: int, currency: str) -> str:
    places = exponent(currency)
    return str((Decimal(amount) / (10**places)).quantize(Decimal(1).scaleb(-places)))


def to_minor(amount: Decimal | str, currency: str) -> int:
    return int((Decimal(amount) * (10 ** exponent(currency))).to_integral_value())


def environment_from_settings() -> Any:
    """`sandbox`, `production`, or `http://host:port` for a local test server."""
    name = settings.BRAINTREE_ENVIRONMENT
    if name in ENVIRONMENTS:
        return ENVIRONMENTS[name]
    if name.startswith("http://"):
        host, _, port = name.removeprefix("http://").rstrip("/").partition(":")
        return braintree.Environment(
            "local", host, port or "80", name, False, None, host, port or "80"
        )
    raise base.GatewayNotConfigured(
        f"BRAINTREE_ENVIRONMENT must be sandbox, production or http://host:port, not {name!r}.",
        gateway="braintree",
    )


def _call(method: Any, *args: Any) -> Any:
    try:
        result = method(*args)
    except (
        braintree.exceptions.UnexpectedError,
        braintree.exceptions.ServerError,
        braintree.exceptions.ServiceUnavailableError,
        braintree.exceptions.GatewayTimeoutError,
        braintree.exceptions.RequestTimeoutError,
        braintree.exceptions.TooManyRequestsError,
    ) as exc:
        raise base.GatewayUnavailable(str(exc) or type(exc).__name__, gateway="braintree") from exc
    except braintree.exceptions.NotFoundError as exc:
        raise base.GatewayError(
            str(exc) or "not found", gateway="braintree", code="not_found"
        ) from exc
    except braintree.exceptions.BraintreeError as exc:
        raise base.GatewayError(str(exc) or type(exc).__name__, gateway="braintree") from exc
    if result is None:
        raise base.GatewayUnavailable("empty answer", gateway="braintree")
    if hasattr(result, "is_success") and not result.is_success:
        transaction = getattr(result, "transaction", None)
        if transaction is not None and transaction.status == "processor_declined":
            raise base.GatewayDeclined(
                result.message,
                gateway="braintree",
                code=str(getattr(transaction, "processor_response_code", "")),
            )
        raise base.GatewayError(result.message, gateway="braintree")
    return result


def our_refund_id(transaction: Any) -> int | None:
    """Our Refund's id from a refund transaction's order id ("refund-<pk>", which we send)."""
    order_id = getattr(transaction, "order_id", None) or ""
    ours = order_id.removeprefix("refund-")
    return int(ours) if order_id.startswith("refund-") and ours.isdigit() else None


class BraintreeGateway(base.PaymentGateway):
    name = "braintree"

    def __init__(self, gateway: braintree.BraintreeGateway) -> None:
        self.gateway = gateway

    @classmethod
    def from_settings(cls) -> BraintreeGateway:
        if not (
            settings.BRAINTREE_ENVIRONMENT
            and settings.BRAINTREE_MERCHANT_ID
            and settings.BRAINTREE_PUBLIC_KEY
            and settings.BRAINTREE_PRIVATE_KEY
        ):
            raise base.GatewayNotConfigured(
                "Braintree is disabled: set BRAINTREE_ENVIRONMENT, BRAINTREE_MERCHANT_ID, "
                "BRAINTREE_PUBLIC_KEY and BRAINTREE_PRIVATE_KEY.",
                gateway="braintree",
            )
        config = braintree.Configuration(
            environment=environment_from_settings(),
            merchant_id=settings.BRAINTREE_MERCHANT_ID,
            public_key=settings.BRAINTREE_PUBLIC_KEY,
            private_key=settings.BRAINTREE_PRIVATE_KEY,
            timeout=30,
            wrap_http_exceptions=True,
        )
        return cls(braintree.BraintreeGateway(config))

    @staticmethod
    def _payment(transaction: Any) -> base.GatewayPayment:
        currency = (getattr(transaction, "currency_iso_code", None) or "USD").upper()
        status = PAYMENT_STATUS.get(transaction.status, "pending")
        amount = to_minor(transaction.amount, currency)
        card = getattr(transaction, "credit_card_details", None)
        return base.GatewayPayment(
            reference=transaction.id,
            status=status,
            amount=amount,
            currency=currency,
            captured_amount=amount if status == "captured" else 0,
            card_brand=(getattr(card, "card_type", "") or "").lower() if card else "",
            card_last4=(getattr(card, "last_4", "") or "") if card else "",
        )

    def _authorize(self, request: base.ChargeRequest) -> base.GatewayPayment:
        result = _call(
            self.gateway.transaction.sale,
            {
                "amount": to_decimal(request.amount, request.currency),
                "payment_method_nonce": request.payment_method,
                "order_id": request.idempotency_key,
                "options": {"submit_for_settlement": request.capture},
            },
        )
        return self._payment(result.transaction)

    def capture(
        self, *, reference: str, amount: int | None, idempotency_key: str
    ) -> base.GatewayPayment:
        current = self.fetch(reference=reference)
        if current.status == "captured":
            return current  # a retry of a capture that went through
        value = to_decimal(amount, current.currency) if amount is not None else None
        args = (reference, value) if value is not None else (reference,)
        result = _call(self.gateway.transaction.submit_for_settlement, *args)
        return self._payment(result.transaction)

    def cancel(self, *, reference: str, idempotency_key: str) -> base.GatewayPayment:
        current = self.fetch(reference=reference)
        if current.status == "canceled":
            return current
        return self._payment(_call(self.gateway.transaction.void, reference).transaction)

    def _refund(self, request: base.RefundRequest) -> base.GatewayRefund:
        # Our refund id already travels as the order id ("refund-<pk>", the idempotency key).
        original = _call(self.gateway.transaction.find, request.reference)
        for refund_reference in getattr(original, "refund_ids", None) or []:
            earlier = _call(self.gateway.transaction.find, refund_reference)
            if getattr(earlier, "order_id", None) == request.idempotency_key:
                refund = earlier  # a retry of a refund that went through
                break
        else:
            refund = _call(
                self.gateway.transaction.refund,
                request.reference,
                {
                    "amount": to_decimal(request.amount, request.currency),
                    "order_id": request.idempotency_key,
                },
            ).transaction
        return self._gateway_refund(refund, request.currency)

    @staticmethod
    def _gateway_refund(refund: Any, currency: str) -> base.GatewayRefund:
        return base.GatewayRefund(
            reference=refund.id,
            amount=to_minor(refund.amount, currency),
            status=REFUND_STATUS.get(refund.status, "pending"),
            refund_id=our_refund_id(refund),
        )

    def refunds_for_payment(self, *, reference: str) -> list[base.GatewayRefund]:
        original = _call(self.gateway.transaction.find, reference)
        currency = (getattr(original, "currency_iso_code", None) or "USD").upper()
        return [
            self._gateway_refund(_call(self.gateway.transaction.find, refund_reference), currency)
            for refund_reference in getattr(original, "refund_ids", None) or []
        ]

    def payment_reference_for_charge(self, *, charge_reference: str) -> str:
        return charge_reference  # a Braintree transaction is its own charge

    def fetch(self, *, reference: str) -> base.GatewayPayment:
        return self._payment(_call(self.gateway.transaction.find, reference))

    def find_payment(
        self, *, payment_id: int, order_id: str, created_after: datetime.datetime
    ) -> base.GatewayPayment | None:
        """The sale we sent with `order_id` (our idempotency key), by a transaction search."""

        def search() -> list[Any]:
            # The SDK fetches the pages while we iterate: inside _call, so errors map too.
            query = braintree.TransactionSearch.order_id == order_id
            return list(self.gateway.transaction.search(query).items)

        for transaction in _call(search):
            if getattr(transaction, "type", "sale") == "sale":
                return self._payment(transaction)
        return None

    def list_refunds(self, *, reference: str, currency: str) -> list[base.GatewayRefundSeen]:
        original = _call(self.gateway.transaction.find, reference)
        found = []
        for refund_id in getattr(original, "refund_ids", None) or []:
            refund = _call(self.gateway.transaction.find, refund_id)
            order_id = getattr(refund, "order_id", None) or ""
            ours = order_id.removeprefix("refund-")
            found.append(
                base.GatewayRefundSeen(
                    reference=refund.id,
                    amount=to_minor(refund.amount, currency),
                    status=REFUND_STATUS.get(refund.status, "pending"),
                    our_id=int(ours) if order_id.startswith("refund-") and ours.isdigit() else None,
                )
            )
        return found

    def fetch_dispute(self, *, dispute_reference: str) -> base.GatewayDispute:
        dispute = _call(self.gateway.dispute.find, dispute_reference)
        return base.GatewayDispute(
            reference=dispute.id, status=DISPUTE_STATUS.get(dispute.status, "needs_response")
        )

    def submit_dispute_evidence(
        self, *, dispute_reference: str, text: str, idempotency_key: str
    ) -> None:
        _call(self.gateway.dispute.add_text_evidence, dispute_reference, text)
        _call(self.gateway.dispute.finalize, dispute_reference)

    def accept_dispute(self, *, dispute_reference: str, idempotency_key: str) -> None:
        _call(self.gateway.dispute.accept, dispute_reference)
