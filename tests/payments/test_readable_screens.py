"""Screens that read like a product: the approvals inbox says what is asked (amount, merchant,
payment, who, how long ago) at a constant number of queries; a refused refund shows as failed
with the gateway's reason; a gateway without configuration reads as such, not as a variable."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audits import roles
from payments.core import approvals
from payments.gateways import GatewayError, GatewayNotConfigured
from payments.models import ApprovalRequest, Payment, Refund
from payments.services.disputes import chargeback_accept_request
from payments.services.refunds import refund_submit
from tests.conftest import make_staff
from tests.payments.factories import (
    CapturedPaymentFactory,
    ChargebackFactory,
    MerchantFactory,
    RefundFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops2(db):
    return make_staff("ops2", roles.PAYMENTS_OPERATIONS, first_name="Omar", last_name="Said")


def _refund_request(payment: Payment, amount: int, actor) -> ApprovalRequest:
    return approvals.approval_request(
        action="refund",
        target=payment,
        actor=actor,
        payload={"amount": amount, "reason": "duplicate", "reason_detail": ""},
        reason="charged twice",
    )


def test_the_inbox_shows_amount_merchant_link_requester_and_age(client, ops, ops2) -> None:
    merchant = MerchantFactory(trading_name="Blue Kettle")
    payment = CapturedPaymentFactory(merchant=merchant, amount=900_000, currency="GBP")
    _refund_request(payment, 750_000, ops2)
    chargeback = ChargebackFactory(amount=4_200, currency="EUR")
    chargeback_accept_request(chargeback=chargeback, reason="cannot win it", actor=ops2)
    client.force_login(ops)
    text = client.get(reverse("payments:approvals")).content.decode()
    assert "7,500.00 GBP" in text and "42.00 EUR" in text
    assert str(merchant) in text and str(chargeback.payment.merchant) in text
    assert reverse("payments:payment-detail", args=[payment.pk]) in text
    assert reverse("payments:dispute-detail", args=[chargeback.pk]) in text
    assert "Omar Said" in text and "minute" in text  # who asked, and how long ago
    assert "(minor units)" not in text


def test_the_inbox_costs_the_same_queries_for_one_request_or_many(client, ops, ops2) -> None:
    client.force_login(ops)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("payments:approvals")).status_code == 200
        return len(queries)

    _refund_request(CapturedPaymentFactory(amount=900_000), 700_000, ops2)
    chargeback_accept_request(chargeback=ChargebackFactory(), reason="r", actor=ops2)
    few = count()
    for _ in range(6):
        _refund_request(CapturedPaymentFactory(amount=900_000), 700_000, ops2)
        chargeback_accept_request(chargeback=ChargebackFactory(), reason="r", actor=ops2)
    # session, user, permissions as every page; then the requests with their requesters, the
    # payments with their merchants, the disputes with their payments and merchants.
    assert count() == few


def test_the_inbox_selector_is_three_queries_for_two_kinds_of_target(
    ops2, django_assert_num_queries
) -> None:
    from payments.selectors import approval_inbox_rows

    for _ in range(3):
        _refund_request(CapturedPaymentFactory(amount=900_000), 700_000, ops2)
        chargeback_accept_request(chargeback=ChargebackFactory(), reason="r", actor=ops2)
    with django_assert_num_queries(3):  # requests + requesters; payments + merchants; disputes
        rows = approval_inbox_rows()
        assert all(row.merchant is not None and row.url for row in rows)


def test_a_refund_the_gateway_refuses_shows_failed_with_its_reason(
    client, ops, local_stripe
) -> None:
    # The local Stripe has no such payment intent: Stripe refuses the refund, says why.
    refund = RefundFactory(amount=1_000, payment__gateway_reference="pi_not_at_stripe")
    with pytest.raises(GatewayError):
        refund_submit(refund=refund)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert refund.failure_reason == "Stripe: Not Found"
    assert Payment.objects.get(pk=refund.payment_id).refunded_amount == 0  # given back
    client.force_login(ops)
    text = client.get(reverse("payments:payment-detail", args=[refund.payment_id])).content.decode()
    assert "Failed" in text and "Stripe: Not Found" in text


def test_a_refund_on_an_unconfigured_gateway_fails_and_says_ask_an_administrator(
    client, ops, settings
) -> None:
    settings.STRIPE_API_KEY = ""
    refund = RefundFactory(amount=1_000)
    with pytest.raises(GatewayNotConfigured):
        refund_submit(refund=refund)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert refund.failure_reason == "Stripe is not configured; ask an administrator."
    client.force_login(ops)
    text = client.get(reverse("payments:payment-detail", args=[refund.payment_id])).content.decode()
    assert "Stripe is not configured; ask an administrator." in text
    assert "STRIPE_API_KEY" not in text


def test_dispute_actions_on_an_unconfigured_gateway_name_no_variable(
    client, ops, settings, caplog
) -> None:
    settings.STRIPE_API_KEY = ""
    chargeback = ChargebackFactory()
    client.force_login(ops)
    from payments.services.disputes import evidence_save_draft

    evidence_save_draft(chargeback=chargeback, text="Delivered, signed for.", actor=ops)
    response = client.post(
        reverse("payments:dispute-action", args=[chargeback.pk, "submit"]),
        {"confirm": "on"},
        follow=True,
    )
    text = response.content.decode()
    assert "Stripe is not configured; ask an administrator." in text
    assert "STRIPE_API_KEY" not in text
    assert "STRIPE_API_KEY" in caplog.text  # the details are in the log


def test_the_console_shows_amounts_in_major_units_with_the_currency(admin_client) -> None:
    refund = RefundFactory(amount=2_550, payment__amount=12_345, payment__currency="GBP")
    chargeback = ChargebackFactory(payment=refund.payment, amount=12_345, currency="GBP")
    payment_page = admin_client.get(
        reverse("admin:payments_payment_change", args=[refund.payment_id])
    ).content.decode()
    assert "123.45 GBP" in payment_page and "25.50 GBP" in payment_page  # refund inline
    refund_page = admin_client.get(
        reverse("admin:payments_refund_change", args=[refund.pk])
    ).content.decode()
    assert "25.50 GBP" in refund_page
    dispute_page = admin_client.get(
        reverse("admin:payments_chargeback_change", args=[chargeback.pk])
    ).content.decode()
    assert "123.45 GBP" in dispute_page
    for page in (payment_page, refund_page, dispute_page):
        assert ">2550<" not in page and ">12345<" not in page
