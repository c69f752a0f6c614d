from __future__ import annotations

from .core.errors import DomainError


class PaymentsError(DomainError):
    pass


class MerchantCannotTakePayments(PaymentsError):
    def __init__(self, *, merchant_id: int, status: str) -> None:
        super().__init__(
            f"Merchant {merchant_id} is {status}: only an active merchant may take payments."
        )


class MerchantStatusRefused(PaymentsError):
    """A status change the merchant rules refuse: activation without an approved KYC case, a
    suspension or re-activation without a reason, or by someone without the permission."""


class RefundNotAllowed(PaymentsError):
    http_status = 409

    def __init__(self, *, payment_id: int, status: str) -> None:
        super().__init__(
            f"Payment {payment_id} is {status}: only captured payments can be refunded."
        )


class RefundExceedsCaptured(PaymentsError):
    def __init__(self, *, payment_id: int, requested: int, refundable: int) -> None:
        self.requested, self.refundable = requested, refundable
        super().__init__(
            f"Payment {payment_id}: a refund of {requested} exceeds the "
            f"{refundable} still refundable."
        )


class IdempotencyKeyReused(PaymentsError):
    """A create retried with the caller's key but another payment (amount, currency,
    gateway): the key names one payment, never two."""

    def __init__(self, *, payment_id: int) -> None:
        super().__init__(
            f"This Idempotency-Key already created payment {payment_id} with other values; "
            "use a new key."
        )
