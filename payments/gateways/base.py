from __future__ import annotations

import datetime
from abc import ABC, abstractmethod
from dataclasses import dataclass

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


@dataclass(frozen=True)
class ChargeRequest:
    """A payment to take, as `PaymentGateway.authorize` hands it to an adapter. `payment_id` is
    our row's id, for a gateway that can carry it (reconcile finds a lost answer by it)."""

    amount: int
    currency: str
    payment_method: str
    capture: bool  # at once, or authorize only and capture later
    idempotency_key: str
    payment_id: int | None = None


@dataclass(frozen=True)
class RefundRequest:
    """A refund to send, as `PaymentGateway.refund` hands it to an adapter. `refund_id` is our
    Refund's id, for a gateway that can carry it (its webhooks then find our row)."""

    reference: str  # the payment's, at the gateway
    amount: int
    currency: str
    idempotency_key: str
    refund_id: int | None = None


class PaymentGateway(ABC):
    """What every adapter offers the services. The two writes with many keywords take them here,
    once, and hand the adapter one request (`_authorize`, `_refund`); the rest each adapter
    implements as they are."""

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
    ) -> GatewayPayment:
        return self._authorize(
            ChargeRequest(amount, currency, payment_method, capture, idempotency_key, payment_id)
        )

    def refund(
        self,
        *,
        reference: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        refund_id: int | None = None,
    ) -> GatewayRefund:
        return self._refund(RefundRequest(reference, amount, currency, idempotency_key, refund_id))

    @abstractmethod
    def _authorize(self, request: ChargeRequest) -> GatewayPayment: ...

    @abstractmethod
    def _refund(self, request: RefundRequest) -> GatewayRefund: ...

    @abstractmethod
    def capture(
        self, *, reference: str, amount: int | None, idempotency_key: str
    ) -> GatewayPayment: ...

    @abstractmethod
    def cancel(self, *, reference: str, idempotency_key: str) -> GatewayPayment: ...

    @abstractmethod
    def refunds_for_payment(self, *, reference: str) -> list[GatewayRefund]: ...

    @abstractmethod
    def payment_reference_for_charge(self, *, charge_reference: str) -> str: ...

    @abstractmethod
    def fetch(self, *, reference: str) -> GatewayPayment: ...

    @abstractmethod
    def find_payment(
        self, *, payment_id: int, order_id: str, created_after: datetime.datetime
    ) -> GatewayPayment | None:
        """The gateway's payment for our row `payment_id` (its idempotency key `order_id`),
        created no earlier than `created_after`, or None if the gateway has none."""

    @abstractmethod
    def list_refunds(self, *, reference: str, currency: str) -> list[GatewayRefundSeen]: ...

    @abstractmethod
    def fetch_dispute(self, *, dispute_reference: str) -> GatewayDispute: ...

    @abstractmethod
    def submit_dispute_evidence(
        self, *, dispute_reference: str, text: str, idempotency_key: str
    ) -> None: ...

    @abstractmethod
    def accept_dispute(self, *, dispute_reference: str, idempotency_key: str) -> None: ...
