from __future__ import annotations

from typing import Any

import factory
from django.db import transaction

from payments.models import Chargeback, Merchant, Payment, Refund


class AtomicFactory(factory.django.DjangoModelFactory):
    """Audited models are saved inside a transaction, as the services do."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        with transaction.atomic():
            return super()._create(model_class, *args, **kwargs)


class MerchantFactory(AtomicFactory):
    class Meta:
        model = Merchant

    legal_name = factory.Sequence(lambda n: f"Merchant {n} Ltd")
    trading_name = factory.Sequence(lambda n: f"Merchant {n}")
    country = "GB"
    contact_email = factory.Sequence(lambda n: f"finance{n}@merchant.example")
    status = Merchant.Status.ACTIVE


class PaymentFactory(AtomicFactory):
    class Meta:
        model = Payment

    merchant = factory.SubFactory(MerchantFactory)
    gateway = "stripe"
    gateway_reference = factory.Sequence(lambda n: f"pi_test_{n:06d}")
    amount = 10_000
    currency = "EUR"
    status = Payment.Status.PENDING
    card_brand = "visa"
    card_last4 = "4242"
    customer_email = factory.Sequence(lambda n: f"customer{n}@example.com")


class CapturedPaymentFactory(PaymentFactory):
    status = Payment.Status.CAPTURED
    captured_amount = factory.SelfAttribute("amount")


class RefundFactory(AtomicFactory):
    class Meta:
        model = Refund

    payment = factory.SubFactory(CapturedPaymentFactory)
    amount = 1_000
    reason = Refund.Reason.REQUESTED_BY_CUSTOMER


class ChargebackFactory(AtomicFactory):
    class Meta:
        model = Chargeback

    payment = factory.SubFactory(CapturedPaymentFactory)
    gateway = "stripe"
    gateway_reference = factory.Sequence(lambda n: f"dp_test_{n:06d}")
    reason = "fraudulent"
    amount = 10_000
    currency = "EUR"
