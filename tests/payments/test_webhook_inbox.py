"""The webhook inbox keeps the evidence (raw body, signature, source IP, receive and event
times) to re-verify an event later, and no body, however odd, gets a 5xx or a half-stored row."""

from __future__ import annotations

import datetime
import json
import time
import urllib.parse
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client

from payments.gateways.braintree import BraintreeGateway
from payments.inbox.verify import MAX_JSON_DEPTH, webhook_event_reverify
from payments.models import Payment, WebhookEvent
from tests.payments import stripe_helpers as sh
from tests.payments.braintree_samples import sample_form, use_test_keys
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _gateways(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]
    use_test_keys(settings)


def _post_stripe(
    body: str, *, remote_addr: str = "198.51.100.7", **headers: str
) -> tuple[Any, str]:
    signature = sh.sign(body)
    client = Client(raise_request_exception=False)
    response = client.post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
        REMOTE_ADDR=remote_addr,
        **headers,
    )
    return response, signature


# --- Evidence -----------------------------------------------------------------------------


def test_a_stripe_event_is_stored_with_its_raw_body_signature_ip_and_times(
    django_capture_on_commit_callbacks,
) -> None:
    payment = PaymentFactory(gateway_reference="pi_evidence")
    event = sh.event("payment_intent.succeeded", sh.intent("pi_evidence", "succeeded"), "evt_ev")
    event["created"] = 1_764_000_000
    # Spaces and key order as the sender chose them: kept byte for byte.
    body = json.dumps(event, indent=2, sort_keys=True)
    before = datetime.datetime.now(tz=datetime.UTC)
    with django_capture_on_commit_callbacks(execute=True):
        response, signature = _post_stripe(body, remote_addr="198.51.100.7")
    assert response.status_code == 200
    stored = WebhookEvent.objects.get()
    assert stored.raw_body == body
    assert stored.signature == signature
    assert stored.source_ip == "198.51.100.7"
    assert stored.received_at >= before
    assert stored.event_created_at == datetime.datetime(2025, 11, 24, 16, 0, tzinfo=datetime.UTC)
    assert stored.payload == event
    assert (stored.status, stored.next_attempt_at) == ("processed", None)
    assert webhook_event_reverify(stored) is True
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.CAPTURED


def test_the_source_ip_is_the_audit_contexts_not_a_forged_forwarded_for() -> None:
    body = json.dumps(sh.event("customer.created", {"id": "cus_1"}))
    response, _ = _post_stripe(
        body, remote_addr="198.51.100.8", HTTP_X_FORWARDED_FOR="203.0.113.66"
    )
    assert response.status_code == 200
    # The peer is not a trusted proxy: its X-Forwarded-For is not believed, here or in the
    # audit trail.
    assert WebhookEvent.objects.get().source_ip == "198.51.100.8"


def test_behind_a_trusted_proxy_the_source_ip_is_the_gateways(settings) -> None:
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    body = json.dumps(sh.event("customer.created", {"id": "cus_2"}))
    _post_stripe(body, remote_addr="10.1.2.3", HTTP_X_FORWARDED_FOR="54.187.174.169")
    assert WebhookEvent.objects.get().source_ip == "54.187.174.169"


def test_a_braintree_notification_keeps_its_form_body_signature_and_timestamp(
    django_capture_on_commit_callbacks,
) -> None:
    import braintree

    form = sample_form(braintree.WebhookNotification.Kind.Check, "")
    with django_capture_on_commit_callbacks(execute=True):
        # As Braintree posts it: a urlencoded form.
        response = Client().post(
            "/webhooks/braintree/",
            urllib.parse.urlencode(form),
            content_type="application/x-www-form-urlencoded",
            REMOTE_ADDR="198.51.100.9",
        )
    assert response.status_code == 200
    stored = WebhookEvent.objects.get()
    assert urllib.parse.parse_qs(stored.raw_body) == {k: [v] for k, v in form.items()}
    assert stored.signature == form["bt_signature"]
    assert stored.source_ip == "198.51.100.9"
    assert stored.event_created_at is not None
    assert abs(stored.event_created_at - stored.received_at) < datetime.timedelta(minutes=1)
    assert webhook_event_reverify(stored) is True
    stored.payload["bt_payload"] = stored.payload["bt_payload"].replace("A", "B", 1)
    assert webhook_event_reverify(stored) is False


def test_reverify_says_no_once_the_body_or_the_parsed_copy_was_changed(
    django_capture_on_commit_callbacks,
) -> None:
    body = json.dumps(sh.event("customer.created", {"id": "cus_3", "email": "a@example.com"}))
    _post_stripe(body)
    stored = WebhookEvent.objects.get()
    assert webhook_event_reverify(stored) is True
    stored.raw_body = body.replace("a@example.com", "b@example.com")
    assert webhook_event_reverify(stored) is False
    stored.refresh_from_db()
    stored.payload["data"]["object"]["email"] = "b@example.com"
    assert webhook_event_reverify(stored) is False


def test_reverify_uses_the_current_secrets(settings) -> None:
    _post_stripe(json.dumps(sh.event("customer.created", {"id": "cus_4"})))
    stored = WebhookEvent.objects.get()
    settings.STRIPE_WEBHOOK_SECRET = ["whsec_rotated", sh.SECRET]
    assert webhook_event_reverify(stored) is True
    settings.STRIPE_WEBHOOK_SECRET = ["whsec_rotated"]
    assert webhook_event_reverify(stored) is False
    settings.STRIPE_WEBHOOK_SECRET = []
    assert webhook_event_reverify(stored) is None


def test_an_event_stored_before_the_evidence_was_kept_cannot_be_reverified() -> None:
    with transaction.atomic():
        old = WebhookEvent.objects.create(
            provider="stripe", event_id="evt_old", event_type="customer.created", payload={}
        )
    assert webhook_event_reverify(old) is None


def test_the_raw_body_stays_out_of_the_change_log() -> None:
    _post_stripe(json.dumps(sh.event("customer.created", {"email": "secret@example.com"})))
    stored = WebhookEvent.objects.get()
    entry = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(WebhookEvent), object_pk=str(stored.pk)
    ).first()
    assert entry is not None
    assert "raw_body" not in entry.changes and "payload" not in entry.changes
    assert "secret@example.com" not in str(entry.changes)


# --- Bodies that are signed but are not events ---------------------------------------------


def _nested_objects(depth: int) -> str:
    return (
        '{"id": "evt_deep", "type": "x", "data": {"object": '
        + '{"a": ' * depth
        + "1"
        + ("}" * depth)
        + "}}"
    )


BAD_BODIES = {
    "a JSON array": ("[]", "the body is an array"),
    "a JSON string": ('"evt_1"', "the body is a string"),
    "a JSON number": ("42", "the body is a number"),
    "a JSON float": ("4.2", "the body is a number"),
    "JSON null": ("null", "the body is null"),
    "a boolean": ("true", "the body is a boolean"),
    "100,000 nested arrays": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "100,000 nested arrays, unclosed": ("[" * 100_000, "nested too deeply"),
    "nested objects beyond the limit": (
        _nested_objects(MAX_JSON_DEPTH + 1),
        f"more than {MAX_JSON_DEPTH} levels",
    ),
    "nested objects at the recursion limit": (_nested_objects(990), "nested"),
    "NaN": ('{"id": "evt_nan", "type": "x", "data": {"object": {"a": NaN}}}', "not valid JSON"),
    "1e999": ('{"id": "evt_inf", "type": "x", "data": {"object": {"a": 1e999}}}', "not valid"),
    "an integer of 5000 digits": (
        '{"id": "evt_big", "type": "x", "data": {"object": {"a": ' + "9" * 5000 + "}}}",
        "not valid JSON",
    ),
    "a raw NUL byte in a string": ('{"id": "evt_\x00", "type": "x"}', "not valid JSON"),
    "an event without data.object": ('{"id": "evt_1", "type": "x"}', "not a Stripe event"),
    "an event id that is not a string": (
        '{"id": 7, "type": "x", "data": {"object": {}}}',
        "not a Stripe event",
    ),
    "empty": ("", "not valid JSON"),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_a_well_signed_body_that_is_not_an_event_is_a_400_and_stores_nothing(case: str) -> None:
    body, reason = BAD_BODIES[case]
    response, _ = _post_stripe(body)
    assert response.status_code == 400, response.content[:200]
    assert reason in response.json()["error"]
    assert not WebhookEvent.objects.exists()
    assert not LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(WebhookEvent)
    ).exists()


def test_a_body_that_is_not_utf8_is_a_400_and_stores_nothing() -> None:
    body = b'{"id": "evt_latin1", "type": "caf\xe9", "data": {"object": {}}}'
    timestamp = int(time.time())
    import hashlib
    import hmac

    digest = hmac.new(sh.SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    response = Client().post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={digest.hexdigest()}",
    )
    assert response.status_code == 400
    assert "not UTF-8" in response.json()["error"]
    assert not WebhookEvent.objects.exists()


def test_a_signed_braintree_payload_that_is_not_a_notification_is_a_400() -> None:
    import base64

    from braintree.util.crypto import Crypto

    gateway = BraintreeGateway.from_settings().gateway
    for junk in (b"not xml", b"<notification/>", b"<a>" * 20_000 + b"</a>" * 20_000):
        payload = base64.b64encode(junk).decode() + "\n"
        digest = Crypto.sha1_hmac_hash(gateway.config.private_key, payload)
        response = Client().post(
            "/webhooks/braintree/",
            {"bt_signature": f"{gateway.config.public_key}|{digest}", "bt_payload": payload},
        )
        assert response.status_code == 400, (junk[:20], response.content)
        assert "malformed notification" in response.json()["error"]
    assert not WebhookEvent.objects.exists()


# --- Bodies PostgreSQL cannot hold as they are ---------------------------------------------


def test_a_nul_inside_a_string_is_stored_escaped_and_acknowledged(
    django_capture_on_commit_callbacks,
) -> None:
    # JSON's \u0000 escape: valid JSON, but PostgreSQL's JSONB (and text) refuse the character.
    body = (
        '{"id": "evt_nul\\u0000", "type": "customer.created", "created": 1764000000, '
        '"data": {"object": {"id": "cus_nul", "name": "Ann\\u0000Lee", "k\\u0000": ["\\u0000"]}}}'
    )
    with django_capture_on_commit_callbacks(execute=True):
        response, _ = _post_stripe(body)
    assert response.status_code == 200, response.content
    stored = WebhookEvent.objects.get()
    assert stored.raw_body == body  # verbatim: the escape is text in the raw body
    # The parsed copy has each NUL as the six characters \u0000.
    assert stored.event_id == "evt_nul\\u0000"
    assert stored.payload["data"]["object"] == {
        "id": "cus_nul",
        "name": "Ann\\u0000Lee",
        "k\\u0000": ["\\u0000"],
    }
    assert stored.status == "ignored"
    assert webhook_event_reverify(stored) is True
    # The redelivery finds the same row.
    response, _ = _post_stripe(body)
    assert response.json()["duplicate"] is True


def test_a_lone_surrogate_is_stored_as_the_replacement_character() -> None:
    body = (
        '{"id": "evt_sur", "type": "customer.created", '
        '"data": {"object": {"name": "x\\ud800y", "ok": "\\ud83d\\ude00"}}}'
    )
    response, _ = _post_stripe(body)
    assert response.status_code == 200, response.content
    stored = WebhookEvent.objects.get()
    assert stored.payload["data"]["object"] == {"name": "x\ufffdy", "ok": "\U0001f600"}
    assert stored.raw_body == body
