from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol

from ..exceptions import PaymentsError


class GatewayError(PaymentsError):
    """The gateway refused the request; the message is the gateway's own (the client's to
    fix, not ours: 422)."""

    def __init__(self, message: str, *, gateway: str = "", code: str = "") -> None:
        self.gateway, self.code = gateway, code
        super().__init__(f"{gateway}: {message}" if gateway else message)


class GatewayDeclined(GatewayError):
    """The card or payment method was declined."""

    http_status = 402


class GatewayNotConfigured(GatewayError):
    """The gateway's credentials are not set: it is disabled."""

    http_status = 503


class GatewayUnavailable(GatewayError):
    """Timeout or network failure: the outcome at the gateway is unknown. Leave the row as it
    is; a webhook or `manage.py reconcile` settles it."""

    http_status = 503  # the outcome is unknown: the client retries


@dataclass(frozen=True)
class GatewayPayment:
    reference: str
    status: str  # a payments.models.Payment.Status value
    amount: int
    currency: str
    captured_amount: int = 0
    card_brand: str = ""
    card_last4: str = ""
    charge_reference: str = ""  # Stripe's charge id (ch_...), which disputes name


@dataclass(frozen=True)
class GatewayRefund:
    reference: str
    status: str  # a payments.models.Refund.Status value
    amount: int
    refund_id: int | None = None  # our Refund's id, as we sent it (metadata or order id)


@dataclass(frozen=True)
class GatewayRefundSeen(GatewayRefund):
    """A refund as the gateway lists it; `our_id` is our refund's id when the gateway carries
    the one we sent (Stripe metadata, Braintree order id), so one whose answer was lost is
    still matched to our row."""

    our_id: int | None = None


@dataclass(frozen=True)
class GatewayDispute:
    reference: str
    status: str  # a payments.models.Chargeback.Status value


class PaymentGateway(Protocol):
    name: str

    def authorize(
        self,
        *,
        amount: int,
        currency: str,
        payment_method: str,
        capture: bool,
        idempotency_key: str,
        payment_id: int | None = None,
    ) -> GatewayPayment: ...

    def capture(
        self, *, reference: str, amount: int | None, idempotency_key: str
    ) -> GatewayPayment: ...

    def cancel(self, *, reference: str, idempotency_key: str) -> GatewayPayment: ...

    def refund(
        self,
        *,
        reference: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        refund_id: int | None = None,
    ) -> GatewayRefund: ...

    def refunds_for_payment(self, *, reference: str) -> list[GatewayRefund]: ...

    def payment_reference_for_charge(self, *, charge_reference: str) -> str: ...

    def fetch(self, *, reference: str) -> GatewayPayment: ...

    def find_payment(
        self, *, payment_id: int, order_id: str, created_after: datetime.datetime
    ) -> GatewayPayment | None:
        """The gateway's payment for our row `payment_id` (its idempotency key `order_id`),
        created no earlier than `created_after`, or None if the gateway has none."""
        ...

    def list_refunds(self, *, reference: str, currency: str) -> list[GatewayRefundSeen]: ...

    def fetch_dispute(self, *, dispute_reference: str) -> GatewayDispute: ...

    def submit_dispute_evidence(
        self, *, dispute_reference: str, text: str, idempotency_key: str
    ) -> None: ...

    def accept_dispute(self, *, dispute_reference: str, idempotency_key: str) -> None: ...
