"""Every request has an id: kept from a well-formed X-Request-ID, else new; echoed in the
response, written on the audit rows and in every log line (JSON), passed on to Celery tasks."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.test import Client

from config import logs, request_id
from payments.models import WebhookEvent
from tests.payments import stripe_helpers as sh
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abcdef12", "abcdef12"),
        ("req_2026-12-06_0001", "req_2026-12-06_0001"),
        ("0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5bd9cb469fa16570867728950e"),
    ],
)
def test_a_well_formed_request_id_is_kept_and_echoed(client: Client, sent: str, kept: str) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID=sent)
    assert response["X-Request-ID"] == kept


@pytest.mark.parametrize(
    "sent",
    [
        "",
        "short",
        "x" * 33,
        "has space inside",
        "quote\"and'<script>",
        "line\nbreak-injected-1234",
        "ünïcode-12345678",
    ],
)
def test_anything_else_gets_a_fresh_id(client: Client, sent: str) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID=sent)
    answered = response["X-Request-ID"]
    assert answered != sent
    assert len(answered) == 32 and int(answered, 16) >= 0


def test_two_requests_without_one_get_different_ids(client: Client) -> None:
    first = client.get("/healthz")["X-Request-ID"]
    assert first != client.get("/healthz")["X-Request-ID"]


def test_the_change_log_of_what_a_request_writes_carries_its_id(
    client: Client, settings: Any
) -> None:
    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]
    PaymentFactory(gateway_reference="pi_request_id")
    payload = json.dumps(
        sh.event("payment_intent.succeeded", sh.intent("pi_request_id", "succeeded"))
    )
    response = client.post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sh.sign(payload),
        HTTP_X_REQUEST_ID="lb-trace-0000000001",
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "lb-trace-0000000001"
    # The inbox row's change-log entry (django-auditlog's correlation id).
    stored = LogEntry.objects.get_for_model(WebhookEvent).get(action=LogEntry.Action.CREATE)
    assert stored.cid == "lb-trace-0000000001"


def test_log_lines_are_json_with_the_request_id(client: Client, caplog: Any) -> None:
    """The formatter settings.LOGGING uses outside DEBUG, on what a request logs."""
    formatter = logs.JsonFormatter()
    caplog.handler.addFilter(logs.RequestIdFilter())
    with caplog.at_level(logging.WARNING, logger="django.request"):
        client.get("/no/such/page", HTTP_X_REQUEST_ID="trace-for-the-log-1")
    record = next(r for r in caplog.records if r.name == "django.request")
    line = json.loads(formatter.format(record))
    assert line["request_id"] == "trace-for-the-log-1"
    assert line["level"] == "WARNING"
    assert line["logger"] == "django.request"
    assert "/no/such/page" in line["message"]
    assert line["time"].endswith("+00:00")


def test_an_exception_is_one_json_line_with_its_type() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
        import sys

        record.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["exception"] == "ValueError"


def test_a_task_published_during_a_request_carries_its_id() -> None:
    """before_task_publish puts the id in the message headers; task_prerun binds it."""
    headers: dict[str, Any] = {}
    token = request_id.current.set("abcdef1234567890")
    try:
        request_id._publish(headers=headers)
    finally:
        request_id.current.reset(token)
    assert headers == {"request_id": "abcdef1234567890"}

    class Request:
        request_id = headers["request_id"]

    class Task:
        request = Request()

    task_id = str(uuid.uuid4())
    request_id._task_started(task_id=task_id, task=Task())
    assert request_id.current.get() == "abcdef1234567890"
    request_id._task_finished(task_id=task_id)
    assert request_id.current.get() == ""
