from __future__ import annotations

import json
import time

import pytest
from django.db import transaction

from payments.models import Chargeback, Payment, Refund, WebhookEvent
from payments.services.refunds import refund_create
from payments.tasks import process_webhook_event
from tests.conftest import run_at_once
from tests.payments import stripe_helpers as sh
from tests.payments.factories import CapturedPaymentFactory, PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _stripe_webhooks(settings, monkeypatch, django_capture_on_commit_callbacks) -> None:
    settings.STRIPE_WEBHOOK_SECRET = ["whsec_old_secret", sh.SECRET]
    post = sh.post

    def post_and_commit(*args, **kwargs):
        # The test runs in a transaction: run what would happen on commit (the enqueue).
        with django_capture_on_commit_callbacks(execute=True):
            return post(*args, **kwargs)

    monkeypatch.setattr(sh, "post", post_and_commit)


def _refused(response, reason: str) -> None:
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert not WebhookEvent.objects.exists()


def test_a_signed_event_is_stored_acknowledged_and_processed(client) -> None:
    payment = PaymentFactory(gateway_reference="pi_ok")
    response = sh.post(
        client, sh.event("payment_intent.succeeded", sh.intent("pi_ok", "succeeded"), "evt_ok")
    )
    assert response.status_code == 200
    assert response.json() == {"received": True, "event_id": "evt_ok", "duplicate": False}
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.last_error) == ("processed", 1, "")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED
    assert payment.captured_amount == 10_000


def test_wrong_secret_is_refused(client) -> None:
    _refused(
        sh.post(
            client,
            sh.event("payment_intent.succeeded", sh.intent("pi", "succeeded")),
            secret="whsec_wrong",
        ),
        "signature does not match",
    )


def test_stale_timestamp_is_refused(client) -> None:
    body = sh.event("payment_intent.succeeded", sh.intent("pi", "succeeded"))
    _refused(sh.post(client, body, timestamp=int(time.time()) - 301), "seconds away from now")


def test_future_timestamp_is_refused(client) -> None:
    body = sh.event("payment_intent.succeeded", sh.intent("pi", "succeeded"))
    _refused(sh.post(client, body, timestamp=int(time.time()) + 301), "seconds away from now")


def test_tampered_body_is_refused(client) -> None:
    payload = json.dumps(sh.event("payment_intent.succeeded", sh.intent("pi", "succeeded")))
    header = sh.sign(payload)
    _refused(
        sh.post(client, payload.replace("10000", "1"), header=header), "signature does not match"
    )


def test_missing_header_is_refused(client) -> None:
    _refused(sh.post(client, sh.event("x", {}), header=""), "missing Stripe-Signature")


def test_malformed_json_is_refused(client) -> None:
    _refused(sh.post(client, "{not json"), "not valid JSON")


def test_a_body_that_is_not_an_event_is_refused(client) -> None:
    _refused(sh.post(client, {"hello": "world"}), "not a Stripe event")


def test_oversized_body_is_refused(client, settings) -> None:
    settings.WEBHOOK_MAX_BYTES = 1024
    body = sh.event(
        "payment_intent.succeeded", {**sh.intent("pi", "succeeded"), "padding": "x" * 2000}
    )
    _refused(sh.post(client, body), "larger than 1024 bytes")


def test_not_configured_answers_503_so_stripe_retries(client, settings) -> None:
    settings.STRIPE_WEBHOOK_SECRET = []
    response = sh.post(client, sh.event("payment_intent.succeeded", sh.intent("pi", "x")))
    assert response.status_code == 503
    assert "STRIPE_WEBHOOK_SECRET" in response.json()["error"]
    assert not WebhookEvent.objects.exists()


def test_a_rotated_out_secret_still_verifies_during_rotation(client) -> None:
    body = sh.event("customer.created", {"id": "cus_1"})
    assert sh.post(client, body, secret="whsec_old_secret").status_code == 200


def test_a_duplicate_delivery_is_acknowledged_and_not_processed_again(client) -> None:
    PaymentFactory(gateway_reference="pi_dup")
    body = sh.event("payment_intent.succeeded", sh.intent("pi_dup", "succeeded"), "evt_dup")
    sh.post(client, body)
    response = sh.post(client, body)
    assert response.status_code == 200
    assert response.json()["duplicate"] is True
    event = WebhookEvent.objects.get()
    assert event.attempts == 1


def test_an_older_event_never_moves_a_payment_backwards(client) -> None:
    payment = PaymentFactory(gateway_reference="pi_order")
    sh.post(client, sh.event("payment_intent.succeeded", sh.intent("pi_order", "succeeded")))
    sh.post(client, sh.event("payment_intent.processing", sh.intent("pi_order", "processing")))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_an_unknown_type_is_stored_and_ignored(client) -> None:
    sh.post(client, sh.event("customer.created", {"id": "cus_1"}))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.IGNORED


def test_processing_that_fails_is_kept_failed_then_succeeds_on_retry(client) -> None:
    sh.post(client, sh.event("payment_intent.succeeded", sh.intent("pi_late", "succeeded")))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    assert "No stripe payment with reference 'pi_late'" in event.last_error
    # The payment shows up (our own create committed late); the retry succeeds.
    payment = PaymentFactory(gateway_reference="pi_late")
    # A run before the retry is due does nothing (a duplicate message); once it is due, it runs.
    process_webhook_event.delay(event.pk)
    assert WebhookEvent.objects.get(pk=event.pk).attempts == 1
    with transaction.atomic():
        event.next_attempt_at = event.received_at
        event.save()
    process_webhook_event.delay(event.pk)
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_error) == ("processed", 2, "")
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.CAPTURED


def test_a_failed_event_can_be_replayed_from_the_console(
    admin_client, django_capture_on_commit_callbacks
) -> None:
    sh.post(admin_client, sh.event("payment_intent.succeeded", sh.intent("pi_r", "succeeded")))
    event = WebhookEvent.objects.get()
    PaymentFactory(gateway_reference="pi_r")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/payments/webhookevent/", {"action": "replay", "_selected_action": [event.pk]}
        )
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    # Replaying a processed event again is harmless, and both replays are in the audit log.
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/payments/webhookevent/", {"action": "replay", "_selected_action": [event.pk]}
        )
    assert Payment.objects.get(gateway_reference="pi_r").status == Payment.Status.CAPTURED
    # Each replay starts a fresh set of attempts.
    assert WebhookEvent.objects.get().attempts == 1


def test_disputes_are_created_and_only_move_forward(client) -> None:
    payment = CapturedPaymentFactory(gateway_reference="pi_d")
    sh.post(
        client, sh.event("charge.dispute.created", sh.dispute("dp_1", "pi_d", "needs_response"))
    )
    sh.post(client, sh.event("charge.dispute.updated", sh.dispute("dp_1", "pi_d", "under_review")))
    # An older update arriving late changes nothing.
    sh.post(
        client, sh.event("charge.dispute.updated", sh.dispute("dp_1", "pi_d", "needs_response"))
    )
    chargeback = Chargeback.objects.get()
    assert (chargeback.payment_id, chargeback.status) == (payment.pk, "under_review")
    assert chargeback.evidence_due_by is not None
    sh.post(client, sh.event("charge.dispute.closed", sh.dispute("dp_1", "pi_d", "won")))
    sh.post(client, sh.event("charge.dispute.funds_reinstated", sh.dispute("dp_1", "pi_d", "won")))
    assert Chargeback.objects.get().status == "won"


def test_refunds_made_at_stripe_are_recorded(client) -> None:
    payment = CapturedPaymentFactory(gateway_reference="pi_rf", amount=10_000)
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": "pi_rf",
        "amount_refunded": 4_000,
        "refunds": {"data": [{"id": "re_1", "amount": 4_000, "status": "succeeded"}]},
    }
    sh.post(client, sh.event("charge.refunded", charge))
    sh.post(
        client,
        sh.event(
            "charge.refunded",
            charge,
        ),
    )  # a second, distinct notification
    refund = Refund.objects.get()
    assert (refund.amount, refund.status, refund.gateway_reference) == (4_000, "succeeded", "re_1")
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", 4_000)


def test_refund_updates_settle_our_own_refund(client) -> None:
    payment = CapturedPaymentFactory(gateway_reference="pi_ru", amount=10_000)
    refund = refund_create(payment=payment, amount=10_000, reason="duplicate")
    with transaction.atomic():
        refund.gateway_reference = "re_ours"
        refund.save()
    sh.post(
        client,
        sh.event(
            "charge.refund.updated",
            {
                "id": "re_ours",
                "object": "refund",
                "amount": 10_000,
                "status": "succeeded",
                "payment_intent": "pi_ru",
            },
        ),
    )
    assert Refund.objects.get().status == "succeeded"
    assert Payment.objects.get(pk=payment.pk).status == "refunded"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_deliveries_at_the_same_moment_are_processed_once() -> None:
    from django.test import Client

    PaymentFactory(gateway_reference="pi_race")
    payload = json.dumps(
        sh.event("payment_intent.succeeded", sh.intent("pi_race", "succeeded"), "evt_race")
    )
    header = sh.sign(payload)

    def deliver():
        return sh.post(Client(), payload, header=header).json()

    results = run_at_once(deliver, deliver)
    assert sorted(r["duplicate"] for r in results) == [False, True]
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", 1)


def test_a_database_failure_answers_500_so_stripe_delivers_again(monkeypatch) -> None:
    from django.db import OperationalError
    from django.test import Client

    def database_down(*args, **kwargs):
        raise OperationalError("connection lost")

    from payments.inbox import store

    monkeypatch.setattr(store, "webhook_event_store", database_down)
    payload = json.dumps(sh.event("customer.created", {"id": "cus"}))
    response = Client(raise_request_exception=False).post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sh.sign(payload),
    )
    assert response.status_code == 500
