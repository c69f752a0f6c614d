from __future__ import annotations

from django.db.models import QuerySet

from .exceptions import PaymentsError
from .models import Merchant, Payment


class PaymentNotFound(PaymentsError):
    def __init__(self, *, gateway: str, reference: str) -> None:
        super().__init__(f"No {gateway} payment with reference '{reference}'.")


def merchant_list() -> QuerySet[Merchant]:
    return Merchant.objects.order_by("pk")


def payment_by_gateway_reference(*, gateway: str, reference: str) -> Payment:
    payment = Payment.objects.filter(gateway=gateway, gateway_reference=reference).first()
    if payment is None:
        raise PaymentNotFound(gateway=gateway, reference=reference)
    return payment
