"""The webhooks' lean path (issue 14, point 2): straight from the request guard to the view,
signatures checked with hmac, and the inbox's one statement without a health check's round
trip on a kept connection."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from payments.inbox.store import webhook_event_store
from payments.inbox.verify import WebhookRejected, verify_stripe
from payments.models import WebhookEvent
from tests.payments import stripe_helpers as sh

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _stripe(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]


def _post(client: Client, body: str, **extra: Any) -> Any:
    return client.post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=extra.pop("signature", None) or sh.sign(body),
        REMOTE_ADDR="203.0.113.9",
        **extra,
    )


def _body(event_id: str) -> str:
    return json.dumps(sh.event("customer.created", {"id": "cus_lane"}, event_id))


def _entry(event_id: str) -> LogEntry:
    event = WebhookEvent.objects.get(event_id=event_id)
    return LogEntry.objects.get_for_model(WebhookEvent).get(object_pk=str(event.pk))


# --- The lane -------------------------------------------------------------------------------


def test_a_webhook_answer_sets_no_cookie_and_keeps_its_request_id_and_length() -> None:
    response = _post(Client(), _body("evt_lane_plain"), HTTP_X_REQUEST_ID="gateway-trace-0001")
    assert response.status_code == 200
    assert response.cookies == {}  # no device cookie, no session, no CSRF token
    assert response["X-Request-ID"] == "gateway-trace-0001"
    assert int(response["Content-Length"]) == len(response.content)
    entry = _entry("evt_lane_plain")
    assert (entry.cid, entry.remote_addr) == ("gateway-trace-0001", "203.0.113.9")
    assert entry.additional_data == {"source": "webhook"}  # no device made up for a gateway


def test_a_device_id_the_caller_sends_is_still_recorded() -> None:
    assert _post(Client(), _body("evt_lane_device"), HTTP_X_DEVICE_ID="relay-7").status_code == 200
    assert _entry("evt_lane_device").additional_data == {
        "source": "webhook",
        "device_id": "relay-7",
    }


def test_a_signed_in_person_posting_a_webhook_is_not_its_actor(client: Client) -> None:
    """The gateway acts, whoever's browser cookies come along: the system user is recorded."""
    client.force_login(User.objects.create_user("someone", password="x" * 20))
    assert _post(client, _body("evt_lane_session")).status_code == 200
    assert _entry("evt_lane_session").actor.username == "system"


def test_a_host_not_allowed_is_refused_and_nothing_is_stored() -> None:
    client = Client(raise_request_exception=False)
    response = _post(client, _body("evt_lane_host"), HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_a_path_under_webhooks_that_names_no_webhook_gets_the_usual_answers() -> None:
    client = Client()
    assert client.post("/webhooks/nowhere/", data="{}", content_type="x").status_code == 404
    # APPEND_SLASH still redirects a GET without its slash.
    assert client.get("/webhooks/stripe").status_code == 301


def test_a_get_is_refused_with_405() -> None:
    assert Client().get("/webhooks/stripe/").status_code == 405


# --- The signature, with hmac ---------------------------------------------------------------


def test_any_of_several_v1_signatures_may_match() -> None:
    body = _body("evt_lane_two_v1")
    good = sh.sign(body)
    timestamp, signature = good.split(",")
    header = f"{timestamp},v1={'0' * 64},{signature}"
    assert verify_stripe(body=body.encode(), signature_header=header).event_id == "evt_lane_two_v1"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("t={now},v0={good}", id="no v1 signature"),
        pytest.param("t={now},v1=", id="an empty v1"),
        pytest.param("t={now},v1={good}0", id="a longer signature"),
        pytest.param("t={now}x,v1={good}", id="a timestamp that is not a number"),
        pytest.param("t={now},v1=\u00e9{good}", id="a signature that is not ASCII"),
    ],
)
def test_a_header_that_does_not_sign_the_body_is_refused(header: str) -> None:
    import time

    body = _body("evt_lane_bad_header")
    now = int(time.time())
    good = sh.sign(body, timestamp=now).split("v1=")[1]
    with pytest.raises(WebhookRejected):
        verify_stripe(body=body.encode(), signature_header=header.format(now=now, good=good))


def test_an_empty_secret_in_the_list_verifies_nothing(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = ["", sh.SECRET]
    body = _body("evt_lane_empty_secret")
    assert verify_stripe(body=body.encode(), signature_header=sh.sign(body)).event_id
    with pytest.raises(WebhookRejected, match="signature does not match"):
        verify_stripe(body=body.encode(), signature_header=sh.sign(body, secret=""))


# --- One statement, even on a kept connection -----------------------------------------------


def _verified(event_id: str) -> Any:
    body = _body(event_id)
    return verify_stripe(body=body.encode(), signature_header=sh.sign(body))


@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_stores_an_event_in_one_query_without_a_health_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    webhook_event_store(_verified("evt_lane_warm"))  # content type and system user cached
    checks = []
    real_check = connection.is_usable
    # The check's SELECT 1 bypasses Django's cursor (and so CaptureQueriesContext): counted here.
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or real_check())
    connection.health_check_done = False  # as at the start of each request
    with CaptureQueriesContext(connection) as queries:
        assert webhook_event_store(_verified("evt_lane_kept")).created
    assert len(queries) == 1  # the INSERT ... ON CONFLICT with its change-log entry
    assert checks == []
    assert WebhookEvent.objects.filter(event_id="evt_lane_kept").exists()


@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_that_died_is_replaced_and_the_event_stored_once() -> None:
    webhook_event_store(_verified("evt_lane_before"))
    pid = connection.connection.info.backend_pid
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"],
        dbname=settings["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    connection.health_check_done = False
    stored = webhook_event_store(_verified("evt_lane_after_death"))
    assert stored.created
    assert connection.connection.info.backend_pid != pid
    event = WebhookEvent.objects.get(event_id="evt_lane_after_death")
    assert LogEntry.objects.get_for_model(WebhookEvent).filter(object_pk=str(event.pk)).count() == 1
