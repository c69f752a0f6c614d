"""Reads for the API, bound to the merchant of the token when it has one: another merchant's
rows are simply not there (404 on a guessed id, never 403)."""

from __future__ import annotations

from django.db.models import QuerySet

from audits.models import PaymentAudit

from .. import selectors
from ..models import Chargeback, Merchant, Payment, PayoutAccount


def merchant_list_api() -> QuerySet[Merchant]:
    return selectors.merchant_list()


def payment_list_api(*, merchant_id: int | None) -> QuerySet[Payment]:
    payments = Payment.objects.all()
    if merchant_id is not None:
        payments = payments.filter(merchant_id=merchant_id)
    return payments


def chargeback_list_api(*, merchant_id: int | None) -> QuerySet[Chargeback]:
    chargebacks = Chargeback.objects.select_related("evidence")
    if merchant_id is not None:
        chargebacks = chargebacks.filter(payment__merchant_id=merchant_id)
    return chargebacks


def audit_rows_for(*, object_type: str, object_id: str) -> QuerySet[PaymentAudit]:
    return PaymentAudit.objects.filter(object_type=object_type, object_id=object_id).select_related(
        "user"
    )


def payout_account_current(*, merchant_id: int) -> PayoutAccount | None:
    return selectors.payout_account_current(merchant_id=merchant_id)
