"""The sandbox gateway: each test card's outcome through the services, its signed webhooks
through the real verification, inbox and handlers, and its refusal in production settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from audits import roles
from payments.core.approvals import approval_approve
from payments.gateways import GatewayDeclined, GatewayError, GatewayNotConfigured, get_gateway
from payments.gateways.sandbox import SandboxGateway, signature_header
from payments.models import Chargeback, Payment, Refund, SandboxObject, WebhookEvent
from payments.services.disputes import (
    chargeback_accept_request,
    evidence_save_draft,
    evidence_submit,
)
from payments.services.payments import payment_authorize, payment_cancel, payment_capture
from payments.services.refunds import refund_request
from tests.conftest import free_port, make_staff
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _sandbox(settings: Any) -> None:
    settings.SANDBOX_ENABLED = True
    settings.SANDBOX_WEBHOOK_SECRET = "sbx_whsec_test"
    settings.SANDBOX_WEBHOOK_URL = ""  # in-process: never a server another worktree runs
    settings.SANDBOX_WEBHOOK_DELAY_SECONDS = 0
    settings.REFUND_APPROVAL_THRESHOLD = 50_000


@pytest.fixture
def commit(django_capture_on_commit_callbacks: Any) -> Any:
    """Run what would run on commit (the sandbox's deliveries, then the inbox's processing):
    the test itself runs in a transaction that never commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def ops2(db: None) -> Any:
    return make_staff("ops2", roles.PAYMENTS_OPERATIONS)


def _pay(commit: Any, ops: Any, method: str, amount: int = 10_000, **extra: Any) -> Payment:
    with commit():
        payment = payment_authorize(
            merchant=MerchantFactory(),
            gateway="sandbox",
            amount=amount,
            currency="eur",
            payment_method=method,
            actor=ops,
            **extra,
        )
    return Payment.objects.get(pk=payment.pk)


def _events() -> list[tuple[str, str]]:
    return list(
        WebhookEvent.objects.filter(provider="sandbox")
        .order_by("pk")
        .values_list("event_type", "status")
    )


@pytest.mark.parametrize("method", ["pm_card_visa", "4242424242424242", "4242 4242 4242 4242"])
def test_the_success_card_captures_and_its_webhook_is_processed(commit, ops, method) -> None:
    payment = _pay(commit, ops, method)
    assert payment.status == Payment.Status.CAPTURED
    assert payment.captured_amount == 10_000
    assert payment.gateway_reference.startswith("sbx_pay_")
    assert (payment.card_brand, payment.card_last4) == ("visa", "4242")
    assert _events() == [("payment.captured", "processed")]
    # Only brand and last four, at the sandbox as here.
    stored = json.dumps([row.data for row in SandboxObject.objects.all()])
    assert "4242424242424242" not in stored
    assert "42424242" not in json.dumps(list(Payment.objects.values()), default=str)


def test_an_authorization_is_captured_later_or_canceled(commit, ops) -> None:
    held = _pay(commit, ops, "pm_card_visa", capture=False)
    assert held.status == Payment.Status.AUTHORIZED
    with commit():
        payment_capture(payment=held, amount=6_000, actor=ops)
    held.refresh_from_db()
    assert (held.status, held.captured_amount) == (Payment.Status.CAPTURED, 6_000)

    other = _pay(commit, ops, "pm_card_mastercard", capture=False)
    with commit():
        payment_cancel(payment=other, actor=ops)
    other.refresh_from_db()
    assert other.status == Payment.Status.CANCELED
    assert ("payment.canceled", "processed") in _events()


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("pm_card_chargeDeclined", "card_declined"),
        ("4000000000000002", "card_declined"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("4000000000009995", "insufficient_funds"),
    ],
)
def test_the_decline_cards_fail_the_payment(commit, ops, method, code) -> None:
    with pytest.raises(GatewayDeclined) as raised, commit():
        payment_authorize(
            merchant=MerchantFactory(),
            gateway="sandbox",
            amount=2_500,
            currency="EUR",
            payment_method=method,
            actor=ops,
        )
    assert raised.value.code == code
    assert raised.value.http_status == 402
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.FAILED
    assert payment.captured_amount == 0


def test_an_unknown_payment_method_is_declined_and_never_reaches_the_sandbox(ops) -> None:
    with pytest.raises(GatewayDeclined, match="No such payment method") as raised:
        payment_authorize(
            merchant=MerchantFactory(),
            gateway="sandbox",
            amount=2_500,
            currency="EUR",
            payment_method="4111111111111111",
            actor=ops,
        )
    assert "4111" not in str(raised.value)
    assert Payment.objects.get().status == Payment.Status.FAILED
    assert not SandboxObject.objects.exists()


def test_the_same_idempotency_key_gets_the_first_answer() -> None:
    gateway = SandboxGateway.from_settings()
    first = gateway.authorize(
        amount=100, currency="EUR", payment_method="pm_card_visa", capture=True, idempotency_key="k"
    )
    again = gateway.authorize(
        amount=100, currency="EUR", payment_method="pm_card_visa", capture=True, idempotency_key="k"
    )
    assert first == again
    assert SandboxObject.objects.filter(kind="payment").count() == 1


def test_the_dispute_card_opens_a_dispute_a_moment_later(commit, ops) -> None:
    payment = _pay(commit, ops, "pm_card_createDispute")
    assert payment.status == Payment.Status.CAPTURED
    chargeback = Chargeback.objects.get(payment=payment)
    assert chargeback.gateway == "sandbox"
    assert chargeback.gateway_reference.startswith("sbx_dp_")
    assert (chargeback.status, chargeback.amount, chargeback.currency) == (
        Chargeback.Status.NEEDS_RESPONSE,
        10_000,
        "EUR",
    )
    assert chargeback.reason == "fraudulent"
    assert chargeback.evidence_due_by is not None
    assert _events() == [("payment.captured", "processed"), ("dispute.created", "processed")]


def test_evidence_goes_under_review_and_winning_evidence_wins(commit, ops) -> None:
    chargeback = Chargeback.objects.get(payment=_pay(commit, ops, "4000000000000259"))
    evidence_save_draft(chargeback=chargeback, text="Delivered; winning_evidence", actor=ops)
    with commit():
        evidence_submit(chargeback=chargeback, actor=ops)
    chargeback.refresh_from_db()
    assert chargeback.status == Chargeback.Status.WON
    assert get_gateway("sandbox").fetch_dispute(
        dispute_reference=chargeback.gateway_reference
    ).status == ("won")
    assert _events()[-2:] == [("dispute.updated", "processed"), ("dispute.closed", "processed")]


def test_evidence_without_a_verdict_stays_under_review(commit, ops) -> None:
    chargeback = Chargeback.objects.get(payment=_pay(commit, ops, "pm_card_createDispute"))
    evidence_save_draft(chargeback=chargeback, text="Signed delivery note attached.", actor=ops)
    with commit():
        evidence_submit(chargeback=chargeback, actor=ops)
    chargeback.refresh_from_db()
    assert chargeback.status == Chargeback.Status.UNDER_REVIEW
    with pytest.raises(GatewayError, match="under_review"):
        get_gateway("sandbox").accept_dispute(
            dispute_reference=chargeback.gateway_reference, idempotency_key="again"
        )


def test_accepting_a_dispute_takes_two_people_and_closes_it(commit, ops, ops2) -> None:
    chargeback = Chargeback.objects.get(payment=_pay(commit, ops, "pm_card_createDispute"))
    request = chargeback_accept_request(chargeback=chargeback, reason="no proof", actor=ops)
    with commit():
        approval_approve(request=request, actor=ops2)
    chargeback.refresh_from_db()
    assert chargeback.status == Chargeback.Status.ACCEPTED
    dispute = SandboxObject.objects.get(reference=chargeback.gateway_reference)
    assert dispute.data["status"] == "accepted"
    assert _events()[-1] == ("dispute.closed", "processed")


def test_a_refund_is_pending_then_succeeds_through_its_webhook(commit, ops) -> None:
    payment = _pay(commit, ops, "pm_card_visa")
    with commit():
        refund = refund_request(payment=payment, amount=4_000, reason="duplicate", actor=ops).refund
    assert refund is not None
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.gateway_reference.startswith("sbx_re_")
    assert (payment.status, payment.refunded_amount) == (Payment.Status.PARTIALLY_REFUNDED, 4_000)
    assert _events()[-1] == ("refund.succeeded", "processed")


def test_a_refund_above_the_threshold_is_approved_then_refunded(commit, ops, ops2) -> None:
    payment = _pay(commit, ops, "pm_card_visa", amount=80_000)
    asked = refund_request(payment=payment, amount=80_000, reason="duplicate", actor=ops)
    assert asked.needs_approval
    with commit():
        approval_approve(request=asked.approval, actor=ops2)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert Refund.objects.get().status == Refund.Status.SUCCEEDED


def test_the_refund_fails_card_fails_the_refund_and_gives_the_amount_back(commit, ops) -> None:
    payment = _pay(commit, ops, "4000000000005126")
    with commit():
        refund_request(payment=payment, amount=10_000, reason="duplicate", actor=ops)
    refund = Refund.objects.get()
    payment.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert (payment.status, payment.refunded_amount) == (Payment.Status.CAPTURED, 0)
    assert _events()[-1] == ("refund.failed", "processed")


def test_a_refund_beyond_the_captured_amount_is_refused_at_the_gateway() -> None:
    gateway = SandboxGateway.from_settings()
    paid = gateway.authorize(
        amount=100, currency="EUR", payment_method="pm_card_visa", capture=True, idempotency_key="p"
    )
    with pytest.raises(GatewayError, match="greater than"):
        gateway.refund(reference=paid.reference, amount=101, currency="EUR", idempotency_key="r")


# -- webhooks: signed, verified, stored once -------------------------------------------------


def _signed_event(commit: Any, ops: Any) -> tuple[Payment, str]:
    """A payment and the body of the sandbox's event about it, as the sandbox sent it."""
    payment = _pay(commit, ops, "pm_card_visa")
    event = SandboxObject.objects.get(kind="event", parent=payment.gateway_reference)
    return payment, event.data["body"]


def _post(client: Client, body: str, header: str) -> Any:
    return client.post(
        "/webhooks/sandbox/",
        data=body,
        content_type="application/json",
        headers={"Sandbox-Signature": header},
    )


def test_a_signed_webhook_is_verified_stored_once_and_a_redelivery_is_a_duplicate(
    client, commit, ops
) -> None:
    payment, body = _signed_event(commit, ops)
    WebhookEvent.objects.all().delete()  # as if the in-process delivery had not happened
    header = signature_header("sbx_whsec_test", body)
    with commit():
        first = _post(client, body, header)
    with commit():
        again = _post(client, body, signature_header("sbx_whsec_test", body))
    assert first.status_code == again.status_code == 200
    assert first.json()["duplicate"] is False
    assert again.json()["duplicate"] is True
    event = WebhookEvent.objects.get()
    assert (event.provider, event.event_type, event.status, event.attempts) == (
        "sandbox",
        "payment.captured",
        "processed",
        1,
    )
    assert event.raw_body == body and event.signature == header
    assert event.event_created_at is not None
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "missing Sandbox-Signature header"),
        ("t=1,v1=00", "timestamp is more than"),
        ("v1=00", "Sandbox-Signature header has no timestamp"),
        ("wrong secret", "signature does not match"),
        ("tampered", "signature does not match"),
    ],
)
def test_a_bad_signature_is_refused_and_nothing_is_written(
    client, commit, ops, header, reason
) -> None:
    _, body = _signed_event(commit, ops)
    WebhookEvent.objects.all().delete()
    if header == "wrong secret":
        header = signature_header("sbx_whsec_someone_else", body)
    elif header == "tampered":
        header = signature_header("sbx_whsec_test", body)
        body = body.replace('"amount":10000', '"amount":1')
    with commit():
        response = _post(client, body, header)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert not WebhookEvent.objects.exists()


def test_a_stored_sandbox_event_is_checked_again_by_its_signature(commit, ops) -> None:
    from payments.inbox.verify import webhook_event_reverify

    _pay(commit, ops, "pm_card_visa")
    event = WebhookEvent.objects.get()
    assert webhook_event_reverify(event) is True
    event.payload["data"]["object"]["amount"] = 1
    assert webhook_event_reverify(event) is False


def test_an_address_nobody_answers_on_falls_back_to_the_inbox_in_process(
    settings, commit, ops
) -> None:
    settings.SANDBOX_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/webhooks/sandbox/"
    payment = _pay(commit, ops, "pm_card_visa")
    assert _events() == [("payment.captured", "processed")]
    event = SandboxObject.objects.get(kind="event", parent=payment.gateway_reference)
    assert event.data["deliveries"] == [f"in-process: stored {event.reference}"]


@pytest.mark.django_db(transaction=True)
def test_events_are_posted_to_our_endpoint_over_http(settings, live_server) -> None:
    settings.SANDBOX_WEBHOOK_URL = f"{live_server.url}/webhooks/sandbox/"
    ops = make_staff("ops-http", roles.PAYMENTS_OPERATIONS)
    payment = payment_authorize(
        merchant=MerchantFactory(),
        gateway="sandbox",
        amount=990,
        currency="EUR",
        payment_method="pm_card_createDispute",
        actor=ops,
    )
    assert _events() == [("payment.captured", "processed"), ("dispute.created", "processed")]
    assert set(WebhookEvent.objects.values_list("source_ip", flat=True)) == {"127.0.0.1"}
    sent = SandboxObject.objects.filter(kind="event", parent=payment.gateway_reference)
    assert [event.data["deliveries"] for event in sent] == [["posted: 200"]]
    assert Chargeback.objects.get().payment_id == payment.pk


@pytest.mark.django_db(transaction=True)
def test_an_event_that_overtakes_the_gateways_answer_settles_the_payment(settings) -> None:
    """Committed for real: the delivery runs during the gateway call, before our row has the
    gateway's reference; the handler finds the row by our id and settles it."""
    ops = make_staff("ops-committed", roles.PAYMENTS_OPERATIONS)
    payment = payment_authorize(
        merchant=MerchantFactory(),
        gateway="sandbox",
        amount=1_234,
        currency="GBP",
        payment_method="pm_card_visa",
        actor=ops,
    )
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED
    assert _events() == [("payment.captured", "processed")]
    with pytest.raises(GatewayDeclined):
        payment_authorize(
            merchant=MerchantFactory(),
            gateway="sandbox",
            amount=1_234,
            currency="GBP",
            payment_method="pm_card_chargeDeclined",
            actor=ops,
        )
    declined = Payment.objects.exclude(pk=payment.pk).get()
    assert declined.status == Payment.Status.FAILED
    assert _events()[-1] == ("payment.failed", "processed")


# -- refused in production --------------------------------------------------------------------


def test_the_adapter_and_its_webhooks_are_refused_when_the_sandbox_is_off(settings, client) -> None:
    settings.DEBUG, settings.SANDBOX_ENABLED = False, False  # as production has them
    with pytest.raises(GatewayNotConfigured, match="SANDBOX_ENABLED is off"):
        get_gateway("sandbox")
    body = json.dumps({"id": "evt_x", "type": "payment.captured", "data": {"object": {}}})
    response = _post(client, body, signature_header("sbx_whsec_test", body))
    assert response.status_code == 503
    assert not WebhookEvent.objects.exists()


def _start(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SANDBOX_ENABLED", "PAYMENTS_DEFAULT_GATEWAY"}
    }
    environment.update(
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="backoffice.example.com",
        FIELD_ENCRYPTION_KEYS="ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE=",
        AUDIT_CHECKPOINT_SIGNING_KEY="SWfEvLHvfhPSk-i8MJzzWrzmrOv9kUmRwrSP0NJcMSc=",
        DJANGO_SETTINGS_MODULE="config.settings",
        **env,
    )
    return subprocess.run(  # our own interpreter and settings
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=django_settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_settings_with_the_sandbox_on_refuse_to_start() -> None:
    refused = _start(DEBUG="0", SANDBOX_ENABLED="1")
    assert refused.returncode != 0
    assert "SANDBOX_ENABLED is on with DEBUG off" in refused.stderr
    assert "refused in production" in refused.stderr
    # Off by default outside DEBUG: production starts, and naming the sandbox is refused.
    assert _start(DEBUG="0").stdout.strip() == "started"
    named = _start(DEBUG="0", PAYMENTS_DEFAULT_GATEWAY="sandbox")
    assert "PAYMENTS_DEFAULT_GATEWAY is sandbox but the sandbox is off" in named.stderr


# -- the API ----------------------------------------------------------------------------------


def test_the_api_uses_the_default_gateway_when_none_is_named(
    settings, commit, administrator
) -> None:
    from tests.api.conftest import client_for, issue

    settings.PAYMENTS_DEFAULT_GATEWAY = "sandbox"
    settings.API_THROTTLE_RATES = {"token": "100000/min", "ip": "100000/min"}
    merchant = MerchantFactory()
    client = client_for(issue(administrator, ["payments:write"], merchant=merchant))
    with commit():
        created = client.post(
            "/api/v1/payments/",
            {"amount": 2_500, "currency": "EUR", "payment_method": "pm_card_visa"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="order-1001",
        )
    assert created.status_code == 201, created.content
    assert (created.json()["gateway"], created.json()["status"]) == ("sandbox", "captured")
    with commit():
        declined = client.post(
            "/api/v1/payments/",
            {"amount": 2_500, "currency": "EUR", "payment_method": "pm_card_chargeDeclined"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="order-1002",
        )
    assert declined.status_code == 402
    assert "declined" in declined.json()["message"]
