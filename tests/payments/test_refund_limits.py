"""Maker-checker cannot be split around: the approval threshold counts what a payment has
refunded already and what its merchant refunded today, decided under the merchant's lock."""

from __future__ import annotations

import pytest
from django.urls import reverse

from payments.models import ApprovalRequest, Payment, Refund
from payments.services.refunds import refund_request, refund_set_status
from tests.conftest import make_staff, run_at_once
from tests.payments.factories import CapturedPaymentFactory, MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limits(settings) -> None:
    settings.REFUND_APPROVAL_THRESHOLD = 50_000
    settings.REFUND_APPROVAL_DAILY_THRESHOLD = 120_000


def _ask(payment: Payment, amount: int, actor) -> Refund | ApprovalRequest:
    outcome = refund_request(payment=payment, amount=amount, reason="duplicate", actor=actor)
    return outcome.approval or outcome.refund


def test_four_refunds_just_under_the_threshold_execute_only_one_without_a_second_person(
    ops,
) -> None:
    from payments.core.approvals import ApprovalAlreadyPending

    payment = CapturedPaymentFactory(amount=200_000)
    assert isinstance(_ask(payment, 49_000, ops), Refund)
    assert isinstance(_ask(payment, 49_000, ops), ApprovalRequest)
    for _ in range(2):
        with pytest.raises(ApprovalAlreadyPending):
            _ask(payment, 49_000, ops)
    assert Refund.objects.count() == 1 and ApprovalRequest.objects.count() == 1
    payment.refresh_from_db()
    assert payment.refunded_amount == 49_000


def test_the_third_split_refund_is_held_with_the_reason(ops) -> None:
    payment = CapturedPaymentFactory(amount=200_000)
    assert isinstance(_ask(payment, 20_000, ops), Refund)
    assert isinstance(_ask(payment, 20_000, ops), Refund)
    held = _ask(payment, 20_000, ops)
    assert isinstance(held, ApprovalRequest)
    assert "60,000" not in held.payload["needs_approval_because"]  # money, not raw units
    assert "600.00 EUR" in held.payload["needs_approval_because"]
    assert "500.00 EUR" in held.payload["needs_approval_because"]
    assert Refund.objects.count() == 2
    payment.refresh_from_db()
    assert payment.refunded_amount == 40_000


def test_a_failed_refund_no_longer_counts_against_the_threshold(ops) -> None:
    payment = CapturedPaymentFactory(amount=200_000)
    first = _ask(payment, 45_000, ops)
    refund_set_status(refund=first, status=Refund.Status.FAILED)
    assert isinstance(_ask(payment, 45_000, ops), Refund)


def test_the_merchants_refunds_today_add_up_across_payments(ops) -> None:
    merchant = MerchantFactory()
    payments = [CapturedPaymentFactory(merchant=merchant, amount=100_000) for _ in range(3)]
    assert isinstance(_ask(payments[0], 45_000, ops), Refund)
    assert isinstance(_ask(payments[1], 45_000, ops), Refund)
    held = _ask(payments[2], 45_000, ops)  # 135,000 today, daily limit 120,000
    assert isinstance(held, ApprovalRequest)
    assert "today" in held.payload["needs_approval_because"]
    assert not Refund.objects.filter(payment=payments[2]).exists()


def test_other_currencies_and_other_merchants_do_not_count(ops) -> None:
    merchant = MerchantFactory()
    eur = CapturedPaymentFactory(merchant=merchant, amount=100_000, currency="EUR")
    usd = CapturedPaymentFactory(merchant=merchant, amount=100_000, currency="USD")
    other = CapturedPaymentFactory(amount=100_000, currency="EUR")
    assert isinstance(_ask(eur, 45_000, ops), Refund)
    assert isinstance(_ask(other, 45_000, ops), Refund)
    assert isinstance(_ask(usd, 45_000, ops), Refund)
    third_eur = CapturedPaymentFactory(merchant=merchant, amount=50_000, currency="GBP")
    assert isinstance(_ask(third_eur, 45_000, ops), Refund)


def test_a_refused_request_writes_nothing(ops) -> None:
    from payments.exceptions import RefundExceedsCaptured

    payment = CapturedPaymentFactory(amount=10_000)
    with pytest.raises(RefundExceedsCaptured):
        _ask(payment, 10_001, ops)
    assert not Refund.objects.exists() and not ApprovalRequest.objects.exists()


def test_the_approval_screen_says_why_a_second_person_is_needed(client, ops) -> None:
    payment = CapturedPaymentFactory(amount=200_000)
    _ask(payment, 30_000, ops)
    _ask(payment, 30_000, ops)
    other = make_staff("ops2", "Payments operations")
    client.force_login(other)
    page = client.get(reverse("payments:approvals")).content.decode()
    assert "Needs a second person: refunds on this payment would total 600.00 EUR" in page


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_are_counted_one_after_the_other(ops, local_stripe) -> None:
    # A real payment at the (local) gateway: the refund executed is sent and holds its amount
    # (a refund the gateway refuses fails and gives it back, which would change the count).
    from payments.services.payments import payment_authorize

    payment = payment_authorize(
        merchant=MerchantFactory(),
        gateway="stripe",
        amount=200_000,
        currency="EUR",
        payment_method="pm_card_visa",
        capture=True,
    )
    results = run_at_once(
        lambda: _ask(payment, 30_000, ops),
        lambda: _ask(payment, 30_000, ops),
    )
    kinds = sorted(type(r).__name__ for r in results)
    assert kinds == ["ApprovalRequest", "Refund"], results
    payment.refresh_from_db()
    assert payment.refunded_amount == 30_000
    assert Refund.objects.count() == 1 and ApprovalRequest.objects.count() == 1
