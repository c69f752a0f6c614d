"""Each allowed and each forbidden status transition, for every status-bearing model."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.db import transaction
from django.utils import timezone

from audits.models import PaymentAudit
from kyc.models import KycCase
from payments.core.errors import InvalidTransition
from payments.models import Chargeback, Merchant, Payment, Refund
from payments.services.disputes import chargeback_set_status
from payments.services.payments import payment_record, payment_set_status
from tests.factories import UserFactory
from tests.kyc.factories import KycCaseFactory
from tests.payments.factories import (
    CapturedPaymentFactory,
    ChargebackFactory,
    MerchantFactory,
    PaymentFactory,
    RefundFactory,
)

pytestmark = pytest.mark.django_db


def _kyc_case(status: str) -> KycCase:
    decided = status in KycCase.DECIDED
    return KycCaseFactory(
        status=status,
        decision={"approved": "approve", "rejected": "reject"}.get(status, ""),
        decided_by=UserFactory() if decided else None,
        decided_at=timezone.now() if decided else None,
        decision_reason="reason" if decided else "",
    )


BUILDERS: dict[type, Any] = {
    Merchant: lambda status: MerchantFactory(status=status),
    Payment: lambda status: PaymentFactory(status=status),
    Refund: lambda status: RefundFactory(status=status),
    Chargeback: lambda status: ChargebackFactory(status=status),
    KycCase: _kyc_case,
}


def _cases() -> list[Any]:
    cases = []
    for model, builder in BUILDERS.items():
        for current, target in itertools.permutations(model.Status.values, 2):
            allowed = target in model.STATUS_TRANSITIONS[current]
            cases.append(
                pytest.param(
                    model,
                    builder,
                    current,
                    target,
                    allowed,
                    id=f"{model.__name__}-{current}-{target}",
                )
            )
    return cases


def _prepare_for(obj: Any, target: str) -> None:
    if isinstance(obj, KycCase) and target in KycCase.DECIDED:
        obj.decision = "approve" if target == "approved" else "reject"
        obj.decided_by = UserFactory()
        obj.decided_at = timezone.now()
        obj.decision_reason = "reason"


@pytest.mark.parametrize(("model", "builder", "current", "target", "allowed"), _cases())
def test_status_moves_only_along_the_machine(
    model: Any, builder: Any, current: str, target: str, allowed: bool
) -> None:
    obj = builder(current)
    _prepare_for(obj, target)  # may create the decider: a user, on the security trail
    audits_before = PaymentAudit.objects.count()
    entries_before = LogEntry.objects.count()

    if allowed:
        with transaction.atomic():
            obj.transition_to(target)
            obj.save()
        assert model.objects.get(pk=obj.pk).status == target
        assert LogEntry.objects.count() == entries_before + 1
        return

    with pytest.raises(InvalidTransition):
        obj.transition_to(target)
    # Saving the forbidden status directly is caught against the stored row as well.
    obj.status = target
    with pytest.raises(InvalidTransition), transaction.atomic():
        obj.save()
    assert model.objects.get(pk=obj.pk).status == current
    assert PaymentAudit.objects.count() == audits_before
    assert LogEntry.objects.count() == entries_before


def test_service_refuses_a_forbidden_transition_and_changes_nothing() -> None:
    payment = PaymentFactory(status=Payment.Status.CANCELED)
    audits_before = PaymentAudit.objects.count()
    with pytest.raises(InvalidTransition, match="cannot move from 'canceled' to 'captured'"):
        payment_set_status(payment=payment, status=Payment.Status.CAPTURED)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELED
    assert payment.captured_amount == 0
    assert PaymentAudit.objects.count() == audits_before


def test_only_an_active_merchant_takes_payments() -> None:
    from payments.exceptions import MerchantCannotTakePayments

    merchant = MerchantFactory(status=Merchant.Status.PENDING)
    with pytest.raises(MerchantCannotTakePayments):
        payment_record(merchant=merchant, gateway="stripe", amount=100, currency="EUR")
    assert not Payment.objects.exists()


def test_capture_records_the_captured_amount() -> None:
    payment = PaymentFactory(status=Payment.Status.AUTHORIZED, amount=2_500)
    payment = payment_set_status(payment=payment, status=Payment.Status.CAPTURED)
    assert payment.captured_amount == 2_500
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.CAPTURED


def test_chargeback_outcome_is_final() -> None:
    chargeback = ChargebackFactory(status=Chargeback.Status.UNDER_REVIEW)
    chargeback_set_status(chargeback=chargeback, status=Chargeback.Status.WON)
    with pytest.raises(InvalidTransition):
        chargeback_set_status(chargeback=chargeback, status=Chargeback.Status.LOST)
    assert Chargeback.objects.get(pk=chargeback.pk).status == Chargeback.Status.WON


def test_captured_payment_factory_is_refundable() -> None:
    assert CapturedPaymentFactory().refundable_amount == 10_000
