"""The operations screens: who may see them, what they do, and what they cost."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from payments.models import ApprovalRequest, Payment, Refund
from payments.services.refunds import refund_create
from tests.payments.factories import (
    CapturedPaymentFactory,
    ChargebackFactory,
    MerchantFactory,
    PaymentFactory,
)

pytestmark = pytest.mark.django_db

SCREENS = ["payments:payment-list", "payments:dispute-list", "payments:approvals"]


def _login(client: Client, user) -> Client:
    client.force_login(user)
    return client


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(queries)


@pytest.mark.parametrize("name", SCREENS)
def test_payments_operations_see_the_screens(client, ops, name) -> None:
    assert _login(client, ops).get(reverse(name)).status_code == 200


@pytest.mark.parametrize("name", SCREENS)
def test_kyc_analysts_are_refused(client, analyst, name) -> None:
    assert _login(client, analyst).get(reverse(name)).status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client) -> None:
    response = client.get(reverse("payments:payment-list"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_screens_show_clear_empty_states(client, ops) -> None:
    _login(client, ops)
    assert "No payments yet." in client.get(reverse("payments:payment-list")).content.decode()
    assert "No disputes here" in client.get(reverse("payments:dispute-list")).content.decode()
    assert (
        "Nothing waits for approval." in client.get(reverse("payments:approvals")).content.decode()
    )


def test_list_screens_cost_the_same_queries_with_few_or_many_rows(client, ops) -> None:
    _login(client, ops)
    merchant = MerchantFactory()
    for _ in range(3):
        ChargebackFactory(payment=CapturedPaymentFactory(merchant=merchant))
    few = {name: _queries(client, reverse(name)) for name in SCREENS}
    for _ in range(30):
        ChargebackFactory(payment=CapturedPaymentFactory(merchant=merchant))
    many = {name: _queries(client, reverse(name)) for name in SCREENS}
    assert few == many
    # session, user, permissions (user, groups), the page of rows with its joins
    assert max(many.values()) <= 8


def test_payment_and_dispute_pages_have_bounded_queries(client, ops) -> None:
    _login(client, ops)
    chargeback = ChargebackFactory()
    payment = chargeback.payment
    few = _queries(client, reverse("payments:payment-detail", args=[payment.pk]))
    few_dispute = _queries(client, reverse("payments:dispute-detail", args=[chargeback.pk]))

    for _ in range(5):
        refund_create(payment=payment, amount=100, reason="duplicate")
    assert _queries(client, reverse("payments:payment-detail", args=[payment.pk])) == few
    assert (
        _queries(client, reverse("payments:dispute-detail", args=[chargeback.pk]))
        <= few_dispute + 1
    )


def test_filters_and_search_narrow_the_list(client, ops) -> None:
    _login(client, ops)
    wanted = PaymentFactory(
        gateway_reference="pi_wanted", customer_email="jo@example.com", amount=4_200
    )
    PaymentFactory(gateway_reference="pi_other", amount=99)
    page = client.get(reverse("payments:payment-list"), {"q": "jo@example.com"}).content.decode()
    assert "pi_wanted" in page and "pi_other" not in page
    page = client.get(
        reverse("payments:payment-list"), {"amount_min": 1000, "status": "pending"}
    ).content.decode()
    assert "pi_wanted" in page and "pi_other" not in page
    page = client.get(
        reverse("payments:payment-list"), {"amount_min": 10, "amount_max": 5}
    ).content.decode()
    assert "Must not be below the lower bound." in page
    assert wanted.pk


def test_pages_go_on_without_counting(client, ops) -> None:
    _login(client, ops)
    merchant = MerchantFactory()
    payments = [PaymentFactory(merchant=merchant) for _ in range(55)]
    first = client.get(reverse("payments:payment-list")).content.decode()
    assert f"after={payments[5].pk}" in first
    second = client.get(
        reverse("payments:payment-list"), {"after": payments[5].pk}
    ).content.decode()
    assert f">{payments[0].pk}</a>" in second and f">{payments[10].pk}</a>" not in second


def test_csv_export_streams_the_whole_filtered_result(client, ops) -> None:
    _login(client, ops)
    merchant = MerchantFactory()
    for n in range(120):
        PaymentFactory(merchant=merchant, amount=1_000 + n, currency="EUR")
    PaymentFactory(status="failed")
    response = client.get(reverse("payments:payment-export"), {"status": "pending"})
    assert response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["id", "created_at", "merchant"]
    assert len(rows) == 121  # header + every pending payment, more than a page
    assert {r[5] for r in rows[1:]} == {"pending"}
    assert rows[-1][7] == "10.00" and rows[-1][8] == "1000"


def test_refund_form_shows_errors_beside_the_field_and_changes_nothing(client, ops) -> None:
    _login(client, ops)
    payment = CapturedPaymentFactory(amount=5_000)
    url = reverse("payments:payment-detail", args=[payment.pk])
    page = client.post(url, {"amount": "60.00", "reason": "duplicate", "confirm": "on"})
    assert page.status_code == 200
    assert "More than the refundable amount." in page.content.decode()
    page = client.post(url, {"amount": "1.234", "reason": "duplicate", "confirm": "on"})
    assert "at most 2 decimal places" in page.content.decode()
    page = client.post(url, {"amount": "10", "reason": "duplicate"})
    assert "This field is required." in page.content.decode()
    assert not Refund.objects.exists()


def test_a_refund_above_the_threshold_goes_to_the_inbox(client, ops, settings) -> None:
    settings.REFUND_APPROVAL_THRESHOLD = 1_000
    _login(client, ops)
    payment = CapturedPaymentFactory(amount=5_000)
    response = client.post(
        reverse("payments:payment-detail", args=[payment.pk]),
        {"amount": "20.00", "reason": "duplicate", "confirm": "on"},
        follow=True,
    )
    assert "waits for a second person" in response.content.decode()
    assert ApprovalRequest.objects.get().payload["amount"] == 2_000
    assert not Refund.objects.exists()
    inbox = client.get(reverse("payments:approvals")).content.decode()
    assert "Your request: someone else decides." in inbox


def test_a_forged_post_without_csrf_token_is_refused(ops) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops)
    payment = CapturedPaymentFactory()
    response = client.post(
        reverse("payments:payment-detail", args=[payment.pk]),
        {"amount": "1.00", "reason": "duplicate", "confirm": "on"},
    )
    assert response.status_code == 403
    assert not Refund.objects.exists()


def test_an_auditor_can_read_a_payment_but_not_refund(client, auditor) -> None:
    _login(client, auditor)
    payment = CapturedPaymentFactory()
    url = reverse("payments:payment-detail", args=[payment.pk])
    page = client.get(url).content.decode()
    assert "Request refund" not in page
    assert (
        client.post(url, {"amount": "1.00", "reason": "duplicate", "confirm": "on"}).status_code
        == 403
    )
    assert not Refund.objects.exists()
    assert Payment.objects.get(pk=payment.pk).refunded_amount == 0


def test_dispute_page_prefills_the_evidence_from_what_we_hold(client, ops) -> None:
    _login(client, ops)
    chargeback = ChargebackFactory()
    page = client.get(reverse("payments:dispute-detail", args=[chargeback.pk])).content.decode()
    assert chargeback.payment.gateway_reference in page
    assert chargeback.payment.customer_email in page
    assert "History of the payment:" in page
    client.post(reverse("payments:dispute-action", args=[chargeback.pk, "assign"]))
    desk = client.get(reverse("payments:dispute-list"), {"show": "mine"}).content.decode()
    assert chargeback.gateway_reference in desk
