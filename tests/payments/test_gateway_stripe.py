"""The Stripe adapter and the payment services, over HTTP against a local Stripe server
(localstripe). localstripe does not implement idempotency keys, so a retried refund is shown
to reach Stripe once by the service, which keeps the gateway's reference on our row."""

from __future__ import annotations

import pytest

from payments.gateways import (
    GatewayDeclined,
    GatewayError,
    GatewayNotConfigured,
    get_gateway,
)
from payments.models import Payment, Refund
from payments.services.payments import payment_cancel, payment_capture
from payments.services.refunds import refund_create, refund_submit
from tests.payments.factories import MerchantFactory
from tests.payments.helpers import gateway_payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def merchant():
    return MerchantFactory()


def _pay(merchant, *, capture: bool, amount: int = 5_000, method: str = "pm_card_visa"):
    return gateway_payment(
        merchant=merchant,
        amount=amount,
        payment_method=method,
        capture=capture,
        customer_email="buyer@example.com",
    )


def test_create_and_confirm_with_automatic_capture(local_stripe, merchant) -> None:
    payment = _pay(merchant, capture=True)
    assert payment.gateway_reference.startswith("pi_")
    assert (payment.status, payment.captured_amount) == ("captured", 5_000)
    assert (payment.card_brand, payment.card_last4) == ("visa", "4242")
    fetched = get_gateway("stripe").fetch(reference=payment.gateway_reference)
    assert (fetched.status, fetched.amount, fetched.currency) == ("captured", 5_000, "EUR")


def test_authorize_then_capture(local_stripe, merchant) -> None:
    payment = _pay(merchant, capture=False)
    assert payment.status == Payment.Status.AUTHORIZED
    payment = payment_capture(payment=payment)
    assert (payment.status, payment.captured_amount) == ("captured", 5_000)


def test_partial_capture_records_the_captured_amount(local_stripe, merchant) -> None:
    payment = _pay(merchant, capture=False, amount=3_000)
    payment = payment_capture(payment=payment, amount=1_200)
    assert (payment.status, payment.captured_amount) == ("captured", 1_200)


def test_cancel_an_authorization(local_stripe, merchant) -> None:
    payment = payment_cancel(payment=_pay(merchant, capture=False))
    assert payment.status == Payment.Status.CANCELED
    assert get_gateway("stripe").fetch(reference=payment.gateway_reference).status == "canceled"


def test_partial_and_full_refund(local_stripe, merchant) -> None:
    payment = _pay(merchant, capture=True, amount=10_000)
    first = refund_create(payment=payment, amount=4_000, reason="duplicate")
    first = refund_submit(refund=first)
    assert first.gateway_reference.startswith("re_") and first.status == "succeeded"
    assert Payment.objects.get(pk=payment.pk).status == "partially_refunded"
    rest = refund_submit(
        refund=refund_create(payment=payment, amount=6_000, reason="requested_by_customer")
    )
    assert rest.status == "succeeded"
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", 10_000)


def test_a_retried_refund_reaches_stripe_once(local_stripe, merchant) -> None:
    payment = _pay(merchant, capture=True)
    refund = refund_create(payment=payment, amount=1_000, reason="duplicate")
    first = refund_submit(refund=refund)
    again = refund_submit(refund=refund)  # a Celery retry, a resumed request
    assert again.gateway_reference == first.gateway_reference
    client = get_gateway("stripe").client
    refunds = client.v1.refunds.list({"payment_intent": payment.gateway_reference})
    assert len(refunds.data) == 1
    assert Refund.objects.get().status == "succeeded"


def test_a_declined_card_fails_the_payment_with_the_gateways_message(
    local_stripe, merchant
) -> None:
    with pytest.raises(GatewayDeclined, match="declined"):
        _pay(merchant, capture=True, method="pm_card_chargeCustomerFail")
    assert Payment.objects.get().status == Payment.Status.FAILED


def test_an_unknown_reference_is_a_clear_error(local_stripe) -> None:
    with pytest.raises(GatewayError, match="stripe"):
        get_gateway("stripe").fetch(reference="pi_does_not_exist")


def test_an_unconfigured_gateway_says_so_and_writes_nothing(settings, merchant) -> None:
    settings.STRIPE_API_KEY = ""
    with pytest.raises(GatewayNotConfigured, match="STRIPE_API_KEY is not set"):
        _pay(merchant, capture=True)
    assert not Payment.objects.exists()
