"""The console changes money only through the services that talk to the gateway first."""

from __future__ import annotations

import pytest
from django.urls import reverse

from payments.gateways import get_gateway
from payments.models import Payment
from payments.services.payments import payment_authorize
from tests.payments.factories import MerchantFactory, PaymentFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:payments_payment_changelist")


def _cancel(client, *payments: Payment):
    return client.post(
        CHANGELIST,
        {"action": "cancel", "_selected_action": [p.pk for p in payments]},
        follow=True,
    )


def test_console_cancel_releases_the_authorization_at_the_gateway(
    admin_client, local_stripe
) -> None:
    payment = payment_authorize(
        merchant=MerchantFactory(),
        gateway="stripe",
        amount=4_200,
        currency="EUR",
        payment_method="pm_card_visa",
        capture=False,
    )
    response = _cancel(admin_client, payment)
    assert "Canceled at the gateway: 1." in response.content.decode()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELED
    assert get_gateway("stripe").fetch(reference=payment.gateway_reference).status == "canceled"


def test_console_cancel_with_the_gateway_disabled_changes_nothing(admin_client, settings) -> None:
    settings.STRIPE_API_KEY = ""
    payment = PaymentFactory(status=Payment.Status.AUTHORIZED)
    response = _cancel(admin_client, payment)
    assert "Stripe is disabled" in response.content.decode()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.AUTHORIZED


def test_console_cancel_of_a_payment_that_never_reached_the_gateway_is_refused(
    admin_client, local_stripe
) -> None:
    payment = PaymentFactory(gateway_reference="", status=Payment.Status.PENDING)
    response = _cancel(admin_client, payment)
    assert "nothing to cancel at the gateway" in response.content.decode()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_console_cancel_of_a_captured_payment_is_refused_before_calling_the_gateway(
    admin_client, settings
) -> None:
    settings.STRIPE_API_KEY = ""  # a call would fail with "disabled": it must not happen
    payment = PaymentFactory(status=Payment.Status.CAPTURED, captured_amount=10_000)
    response = _cancel(admin_client, payment)
    assert "cannot move from &#x27;captured&#x27; to &#x27;canceled&#x27;" in (
        response.content.decode()
    )
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED
