"""The stack test: compose.yaml's processes (gunicorn, a Celery worker, beat) started by
tools/stack.py on the local PostgreSQL and Redis, since no container can start here or in CI.
A signed webhook goes over HTTP to gunicorn, through Redis to the worker, and ends as an audited
change, and the request id follows it into the worker's log. Run alone with `pytest -m stack`."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection

from audits.models import PaymentAudit
from payments.models import Payment, WebhookEvent
from tests.conftest import free_port
from tests.payments import stripe_helpers as sh
from tests.payments.factories import PaymentFactory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from stack import Stack  # noqa: E402

pytestmark = [
    pytest.mark.stack,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("TEST_REDIS_URL"),
        reason="needs Redis for the broker: set TEST_REDIS_URL (make test and CI do)",
    ),
]

METRICS_TOKEN = secrets.token_urlsafe(16)


def wait_until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {condition}")


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def stack(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module: starting it is most of the test's time."""
    import redis

    tmp_path = tmp_path_factory.mktemp("stack")

    broker = os.environ["TEST_REDIS_URL"]
    redis.Redis.from_url(broker).flushdb()  # no message left by an earlier run
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker,
        "SECRET_KEY": secrets.token_urlsafe(50),
        # The test process's keys: the stack reads what the test wrote.
        "FIELD_ENCRYPTION_KEYS": ",".join(django_settings.FIELD_ENCRYPTION_KEYS),
        "AUDIT_CHECKPOINT_SIGNING_KEY": django_settings.AUDIT_CHECKPOINT_SIGNING_KEY,
        "STRIPE_WEBHOOK_SECRET": sh.SECRET,
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    running = Stack(
        env=env,
        port=free_port(),
        worker_metrics_port=free_port(),
        log_dir=tmp_path / "logs",
        say=lambda line: print(f"{time.monotonic():.1f} {line}"),
    )
    running.start(timeout=60)
    yield running
    running.stop()
    connection.close()  # the stack's sessions are gone; ours is dropped with the test database


def _post_webhook(stack: Stack, payload: str, request_id: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{stack.url}/webhooks/stripe/",
        data=payload.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sh.sign(payload),
            "X-Request-ID": request_id,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["X-Request-ID"] == request_id
        return json.loads(answer.read())


def _scrape(url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read().decode()


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def test_a_signed_webhook_flows_through_web_broker_and_worker_to_an_audited_change(
    stack: Stack,
) -> None:
    payment = PaymentFactory(gateway_reference="pi_stack")
    request_id = f"stack-{secrets.token_hex(8)}"
    payload = json.dumps(
        sh.event("payment_intent.succeeded", sh.intent("pi_stack", "succeeded"), "evt_stack")
    )

    assert _post_webhook(stack, payload, request_id) == {
        "received": True,
        "event_id": "evt_stack",
        "duplicate": False,
    }

    # The worker, not the web process, made the change: the audit row names the task.
    wait_until(lambda: WebhookEvent.objects.get(event_id="evt_stack").status == "processed")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED
    change = PaymentAudit.objects.get(object_id=str(payment.pk), action_type="task.payment.update")
    assert change.user.username == "system"
    assert change.before_state["status"] == "pending"
    assert change.after_state["status"] == "captured"

    # One request id from the web's access log to the worker's log line for the task.
    access = wait_until(
        lambda: [
            line
            for line in _json_lines(stack.log_path("web"))
            if line.get("path") == "/webhooks/stripe/"
        ]
    )
    assert access[0]["request_id"] == request_id and access[0]["status"] == 200
    worked = wait_until(
        lambda: [
            line
            for line in _json_lines(stack.log_path("worker"))
            if line.get("request_id") == request_id
        ]
    )
    assert any("processed" in line["message"] for line in worked)

    # The worker counted the task, and /metrics sees the backlog empty.
    worker_metrics = wait_until(
        lambda: (
            text
            if "process_webhook_event"
            in (text := _scrape(f"http://127.0.0.1:{stack.worker_metrics_port}/metrics"))
            else None
        )
    )
    assert (
        'backoffice_celery_tasks_succeeded_total{task="payments.tasks.process_webhook_event"}'
        in worker_metrics
    )
    web_metrics = _scrape(f"{stack.url}/metrics", METRICS_TOKEN)
    assert "backoffice_webhook_backlog_events 0.0" in web_metrics
    assert "backoffice_webhook_events_failed_for_good 0.0" in web_metrics
    assert (
        'backoffice_http_requests_total{method="POST",status="200",view="webhook-stripe"} 1.0'
        in web_metrics
    )
    # Beat is up with its schedule (its first periodic task, the sweep, is a minute away: the
    # sweep itself is tested in tests/payments/test_webhook_retries.py).
    assert stack.processes["beat"].poll() is None
    started = [x for x in _json_lines(stack.log_path("beat")) if x["logger"] == "celery.beat"]
    assert started[0]["message"] == "beat: Starting..."


def test_the_access_log_leaves_query_strings_out(stack: Stack) -> None:
    secret_query = "email=someone%40example.com&token=abc123"
    _scrape(f"{stack.url}/healthz?{secret_query}")
    line = wait_until(
        lambda: [x for x in _json_lines(stack.log_path("web")) if x.get("path") == "/healthz"]
    )[0]
    assert line["status"] == 200
    text = stack.log_path("web").read_text()
    assert "someone" not in text and "abc123" not in text
