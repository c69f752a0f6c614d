from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from audits.models import PaymentAudit
from payments.exceptions import RefundExceedsCaptured, RefundNotAllowed
from payments.models import Payment, Refund
from payments.services.refunds import refund_create, refund_set_status
from tests.conftest import run_at_once
from tests.payments.factories import CapturedPaymentFactory, PaymentFactory


@pytest.mark.django_db
class TestRefunds:
    def test_partial_then_full_refund(self, ops) -> None:
        payment = CapturedPaymentFactory(amount=10_000)
        first = refund_create(
            payment=payment, amount=4_000, reason="requested_by_customer", actor=ops
        )
        refund_set_status(refund=first, status="succeeded", gateway_reference="re_1")
        assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PARTIALLY_REFUNDED
        second = refund_create(payment=payment, amount=6_000, reason="duplicate")
        refund_set_status(refund=second, status="succeeded", gateway_reference="re_2")
        payment.refresh_from_db()
        assert payment.status == Payment.Status.REFUNDED
        assert payment.refunded_amount == payment.captured_amount == 10_000

    def test_refund_above_captured_is_refused_and_writes_nothing(self) -> None:
        payment = CapturedPaymentFactory(amount=10_000)
        refund_create(payment=payment, amount=7_000, reason="duplicate")
        audits_before = PaymentAudit.objects.count()
        with pytest.raises(RefundExceedsCaptured, match="exceeds the 3000 still refundable"):
            refund_create(payment=payment, amount=3_001, reason="duplicate")
        assert Refund.objects.filter(payment=payment).count() == 1
        assert Payment.objects.get(pk=payment.pk).refunded_amount == 7_000
        assert PaymentAudit.objects.count() == audits_before

    def test_uncaptured_payment_cannot_be_refunded(self) -> None:
        payment = PaymentFactory(status=Payment.Status.AUTHORIZED)
        with pytest.raises(RefundNotAllowed):
            refund_create(payment=payment, amount=1, reason="duplicate")
        assert not Refund.objects.exists()

    def test_failed_refund_gives_its_amount_back(self) -> None:
        payment = CapturedPaymentFactory(amount=5_000)
        refund = refund_create(payment=payment, amount=5_000, reason="duplicate")
        refund_set_status(refund=refund, status="failed")
        payment.refresh_from_db()
        assert payment.refunded_amount == 0
        assert payment.status == Payment.Status.CAPTURED
        refund_create(payment=payment, amount=5_000, reason="duplicate")

    def test_database_refuses_refunded_above_captured(self) -> None:
        payment = CapturedPaymentFactory(amount=5_000)
        payment.refunded_amount = 5_001
        with pytest.raises(IntegrityError), transaction.atomic():
            payment.save()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_racing_refunds_never_exceed_the_captured_amount() -> None:
    payment = CapturedPaymentFactory(amount=10_000)

    def refund_7000() -> Refund:
        return refund_create(payment=payment, amount=7_000, reason="duplicate")

    results = run_at_once(refund_7000, refund_7000)

    refunds = [r for r in results if isinstance(r, Refund)]
    refusals = [r for r in results if isinstance(r, RefundExceedsCaptured)]
    assert len(refunds) == 1, results
    assert len(refusals) == 1, results
    payment.refresh_from_db()
    assert payment.refunded_amount == 7_000
    assert Refund.objects.filter(payment=payment).count() == 1
