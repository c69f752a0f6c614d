"""The Braintree adapter through the real SDK, over HTTP to a local server that answers with
Braintree's XML."""

from __future__ import annotations

import pytest

from payments.gateways import GatewayError, GatewayUnavailable, get_gateway
from payments.models import Payment, Refund
from payments.services.payments import payment_cancel, payment_capture
from payments.services.refunds import refund_create, refund_submit
from tests.payments.factories import MerchantFactory
from tests.payments.helpers import gateway_payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def merchant():
    return MerchantFactory()


def _pay(merchant, *, capture: bool, amount: int = 1_050):
    return gateway_payment(gateway="braintree", merchant=merchant, amount=amount, capture=capture)


def test_sale_with_settlement(local_braintree, merchant) -> None:
    payment = _pay(merchant, capture=True)
    assert (payment.status, payment.captured_amount) == ("captured", 1_050)
    assert (payment.card_brand, payment.card_last4) == ("visa", "1111")
    method, path, body = local_braintree.requests[0]
    assert (method, path) == ("POST", "/merchants/merchant_test/transactions")
    assert "<amount>10.50</amount>" in body
    assert f"<order_id>payment-{payment.pk}</order_id>" in body


def test_authorize_capture_and_void(local_braintree, merchant) -> None:
    payment = _pay(merchant, capture=False)
    assert payment.status == Payment.Status.AUTHORIZED
    payment = payment_capture(payment=payment)
    assert payment.status == Payment.Status.CAPTURED
    other = payment_cancel(payment=_pay(merchant, capture=False))
    assert other.status == Payment.Status.CANCELED
    assert local_braintree.transactions[other.gateway_reference].status == "voided"


def test_refund_and_a_retried_refund_reaches_braintree_once(local_braintree, merchant) -> None:
    payment = _pay(merchant, capture=True)
    refund = refund_create(payment=payment, amount=500, reason="duplicate")
    # The first answer is lost on the way back: the refund happened, we did not record it.
    gateway = get_gateway("braintree")
    first = gateway.refund(
        reference=payment.gateway_reference,
        amount=500,
        currency="EUR",
        idempotency_key=f"refund-{refund.pk}",
    )
    refund = refund_submit(refund=refund)  # the retry
    assert refund.gateway_reference == first.reference
    assert len(local_braintree.transactions[payment.gateway_reference].refund_ids) == 1
    assert Refund.objects.get().status == "pending"  # settles with Braintree's settlement


def test_an_error_result_carries_braintrees_message(local_braintree, merchant) -> None:
    local_braintree.fail_with = (422, "Amount is an invalid format.")
    with pytest.raises(GatewayError, match="Amount is an invalid format"):
        _pay(merchant, capture=True)


def test_a_server_error_leaves_the_outcome_unknown(local_braintree, merchant) -> None:
    local_braintree.fail_with = (503, "down")
    with pytest.raises(GatewayUnavailable):
        _pay(merchant, capture=True)
    payment = Payment.objects.get()
    assert (payment.status, payment.gateway_reference) == ("pending", "")


def test_a_missing_transaction_is_a_clear_error(local_braintree) -> None:
    with pytest.raises(GatewayError, match="not found"):
        get_gateway("braintree").fetch(reference="nope")
