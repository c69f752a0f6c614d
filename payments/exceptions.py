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


class PayoutAccountInUse(PaymentsError):
    """The same bank account is registered to another merchant (found by its blind index)."""

    http_status = 409

    def __init__(self) -> None:
        super().__init__(
            "This bank account is already registered to another merchant; a payout account "
            "belongs to one merchant. Contact support if it is shared."
        )


class PayoutVerificationRefused(PaymentsError):
    """A confirmation the account's state refuses: nothing waits for one (verified already,
    failed, replaced), too many attempts, or too late."""

    http_status = 409


class PayoutAccountAlreadyVerified(PayoutVerificationRefused):
    pass


class PayoutVerificationLocked(PayoutVerificationRefused):
    pass


class PayoutVerificationExpired(PayoutVerificationRefused):
    pass


class PayoutAccountNotAwaitingConfirmation(PayoutVerificationRefused):
    pass


class PayoutAmountsWrong(PaymentsError):
    """The amounts confirmed are not the two deposits. The attempt counts."""

    http_status = 422

    def __init__(self, *, attempts_left: int) -> None:
        self.attempts_left = attempts_left
        super().__init__(
            "These are not the two amounts we sent. "
            + (
                f"{attempts_left} attempt{'s' if attempts_left != 1 else ''} left."
                if attempts_left
                else "That was the last attempt: the account is locked; add it again to "
                "receive new deposits."
            )
        )


class PayoutsNeedVerifiedAccount(PaymentsError):
    http_status = 409

    def __init__(self, *, merchant: object) -> None:
        super().__init__(
            f"{merchant}: payouts need a payout account verified by micro-deposits (the "
            "merchant adds one through the API and confirms the two amounts)."
        )
