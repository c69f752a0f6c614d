from __future__ import annotations

from .state import DomainError, InvalidTransition

__all__ = [
    "DomainError",
    "InvalidTransition",
    "MerchantCannotTakePayments",
    "PaymentsError",
    "RefundExceedsCaptured",
    "RefundNotAllowed",
]


class PaymentsError(DomainError):
    pass


class MerchantCannotTakePayments(PaymentsError):
    def __init__(self, *, merchant_id: int, status: str) -> None:
        super().__init__(
            f"Merchant {merchant_id} is {status}: only an active merchant may take payments."
        )


class RefundNotAllowed(PaymentsError):
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
