"""Braintree notifications signed by the SDK's own webhook_testing, for every handled kind."""

from __future__ import annotations

import braintree
import pytest

from payments.models import Chargeback, Payment, WebhookEvent
from tests.payments.braintree_samples import DISPUTE_OUTCOMES, sample_form, use_test_keys
from tests.payments.factories import CapturedPaymentFactory, PaymentFactory

pytestmark = pytest.mark.django_db

Kind = braintree.WebhookNotification.Kind


@pytest.fixture(autouse=True)
def _braintree(settings) -> None:
    use_test_keys(settings)


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def post(form: dict[str, str]):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/webhooks/braintree/", form)

    return post


@pytest.mark.parametrize(
    ("kind", "start", "expected"),
    [
        (Kind.TransactionSettled, Payment.Status.AUTHORIZED, Payment.Status.CAPTURED),
        # After capture a declined settlement needs a person: test_gateway_events_braintree.
        (Kind.TransactionSettlementDeclined, Payment.Status.PROCESSING, Payment.Status.FAILED),
    ],
)
def test_transaction_notifications_move_the_payment(deliver, kind, start, expected) -> None:
    payment = PaymentFactory(
        gateway="braintree",
        gateway_reference="bt_txn_1",
        status=start,
        captured_amount=10_000 if start == "captured" else 0,
    )
    response = deliver(sample_form(kind, "bt_txn_1"))
    assert response.status_code == 200, response.content
    event = WebhookEvent.objects.get()
    assert (event.provider, event.event_type, event.status) == ("braintree", kind, "processed")
    assert Payment.objects.get(pk=payment.pk).status == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    DISPUTE_OUTCOMES,
)
def test_dispute_notifications_record_the_chargeback(deliver, kind, expected) -> None:
    payment = CapturedPaymentFactory(
        gateway="braintree", gateway_reference="bt_dispute_1", currency="USD"
    )
    response = deliver(sample_form(kind, "bt_dispute_1"))
    assert response.status_code == 200, response.content
    chargeback = Chargeback.objects.get()
    assert (chargeback.payment_id, chargeback.gateway, chargeback.status) == (
        payment.pk,
        "braintree",
        expected,
    )
    assert chargeback.amount > 0 and chargeback.evidence_due_by is not None
    assert WebhookEvent.objects.get().status == "processed"


def test_an_opened_dispute_then_won_moves_forward_and_not_back(deliver) -> None:
    CapturedPaymentFactory(gateway="braintree", gateway_reference="bt_d2", currency="USD")
    deliver(sample_form(Kind.DisputeOpened, "bt_d2"))
    deliver(sample_form(Kind.DisputeWon, "bt_d2"))
    deliver(sample_form(Kind.DisputeOpened, "bt_d2"))  # a late duplicate of the opening
    assert Chargeback.objects.get().status == Chargeback.Status.WON


def test_check_notification_is_stored_and_processed(deliver) -> None:
    assert deliver(sample_form(Kind.Check, "")).status_code == 200
    assert WebhookEvent.objects.get().status == "processed"


def test_a_redelivery_has_the_same_id_and_is_not_processed_again(deliver) -> None:
    PaymentFactory(gateway="braintree", gateway_reference="bt_txn_2", status="authorized")
    form = sample_form(Kind.TransactionSettled, "bt_txn_2")
    deliver(form)
    response = deliver(form)
    assert response.json()["duplicate"] is True
    assert WebhookEvent.objects.get().attempts == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda f: {**f, "bt_payload": f["bt_payload"][:-8] + "AAAAAAA="},
            "signature does not match",
        ),
        (lambda f: {**f, "bt_signature": "public_test|" + "0" * 40}, "signature does not match"),
        (lambda f: {**f, "bt_signature": "someone_else|abc"}, "signature does not match"),
        (lambda f: {"bt_payload": f["bt_payload"]}, "missing bt_signature"),
        (lambda f: {**f, "bt_payload": "not base64 !!"}, "signature does not match"),
    ],
)
def test_bad_notifications_are_refused_and_nothing_is_stored(deliver, change, reason) -> None:
    response = deliver(change(sample_form(Kind.Check, "")))
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert not WebhookEvent.objects.exists()


def test_not_configured_answers_503(deliver, settings) -> None:
    settings.BRAINTREE_PRIVATE_KEY = ""
    response = deliver({"bt_signature": "a|b", "bt_payload": "c"})
    assert response.status_code == 503
    assert "Braintree is disabled" in response.json()["error"]
