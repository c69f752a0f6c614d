"""The console changes money only through the services that talk to the gateway first."""

from __future__ import annotations

import pytest
from django.urls import reverse

from payments.gateways import get_gateway
from payments.models import Payment
from tests.payments.factories import PaymentFactory
from tests.payments.helpers import gateway_payment

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:payments_payment_changelist")


def _cancel(client, *payments: Payment):
    return client.post(
        CHANGELIST,
        {"action": "cancel", "_selected_action": [p.pk for p in payments]},
        follow=True,
    )


def _assert_cancel_says(client, payment: Payment, message: str, status: str) -> None:
    """Cancel from the changelist: the page says `message`, the payment ends in `status`."""
    response = _cancel(client, payment)
    assert message in response.content.decode()
    payment.refresh_from_db()
    assert payment.status == status


def test_console_cancel_releases_the_authorization_at_the_gateway(
    admin_client, local_stripe
) -> None:
    payment = gateway_payment(amount=4_200, capture=False)
    _assert_cancel_says(
        admin_client, payment, "Canceled at the gateway: 1.", Payment.Status.CANCELED
    )
    assert get_gateway("stripe").fetch(reference=payment.gateway_reference).status == "canceled"


def test_console_cancel_with_the_gateway_disabled_changes_nothing(admin_client, settings) -> None:
    settings.STRIPE_API_KEY = ""
    payment = PaymentFactory(status=Payment.Status.AUTHORIZED)
    _assert_cancel_says(admin_client, payment, "Stripe is disabled", Payment.Status.AUTHORIZED)


def test_console_cancel_of_a_payment_that_never_reached_the_gateway_is_refused(
    admin_client, local_stripe
) -> None:
    payment = PaymentFactory(gateway_reference="", status=Payment.Status.PENDING)
    _assert_cancel_says(
        admin_client, payment, "nothing to cancel at the gateway", Payment.Status.PENDING
    )


def test_console_cancel_of_a_captured_payment_is_refused_before_calling_the_gateway(
    admin_client, settings
) -> None:
    settings.STRIPE_API_KEY = ""  # a call would fail with "disabled": it must not happen
    payment = PaymentFactory(status=Payment.Status.CAPTURED, captured_amount=10_000)
    _assert_cancel_says(
        admin_client,
        payment,
        "cannot move from &#x27;captured&#x27; to &#x27;canceled&#x27;",
        Payment.Status.CAPTURED,
    )
