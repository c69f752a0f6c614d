"""A real Celery worker, consuming from a real Redis, processing webhooks end to end.

Each test starts its own redis-server on a free loopback port (so it can stop and restart the
broker) and a worker subprocess on the test database. PostgreSQL only: the worker is another
process and must see the test's committed rows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from audits.models import PaymentAudit
from payments.models import Payment, WebhookEvent
from payments.tasks import webhook_events_sweep
from tests.conftest import free_port
from tests.payments import stripe_helpers as sh
from tests.payments.factories import PaymentFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def wait_until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {condition}")


class RedisServer:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is needed for the worker tests (CI machines have it)")
        self.binary, self.port = binary, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(lambda: _connects(self.port), timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _connects(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Worker:
    def __init__(self, broker_url: str) -> None:
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DEBUG": "1",
            "DATABASE_URL": (
                f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                f"{db['PORT'] or 5432}/{db['NAME']}"
            ),
            "CELERY_BROKER_URL": broker_url,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-l",
                "info",
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def child_pids(self) -> list[int]:
        assert self.process is not None
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


@pytest.fixture
def broker() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def celery_app_on(broker: RedisServer, settings: Any) -> Iterator[None]:
    """This (the web) process sends tasks to the broker instead of running them in-process."""
    from config.celery import app

    def forget_connections() -> None:
        # What Celery itself does after a fork: drop the pooled broker connections.
        app._pool = None
        app.amqp._producer_pool = None

    settings.CELERY_BROKER_URL = broker.url
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    forget_connections()
    app.conf.update(broker_url=broker.url, task_always_eager=False)
    yield
    forget_connections()
    app.conf.update(broker_url=saved[0], task_always_eager=saved[1])


@pytest.fixture
def worker(broker: RedisServer, celery_app_on: None) -> Iterator[Worker]:
    process = Worker(broker.url)
    process.start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def _stripe_secret(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]


def _deliver(reference: str, event_id: str) -> dict[str, Any]:
    payload = json.dumps(
        sh.event("payment_intent.succeeded", sh.intent(reference, "succeeded"), event_id)
    )
    response = Client().post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sh.sign(payload),
    )
    assert response.status_code == 200, response.content
    return response.json()


def _status(event_id: str) -> str:
    return WebhookEvent.objects.get(event_id=event_id).status


def test_a_worker_processes_a_webhook_end_to_end(worker: Worker) -> None:
    payment = PaymentFactory(gateway_reference="pi_worker")
    _deliver("pi_worker", "evt_worker")
    wait_until(lambda: _status("evt_worker") == "processed")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED
    row = PaymentAudit.objects.filter(
        object_id=str(payment.pk), action_type="task.payment.update"
    ).get()
    assert row.user.username == "system"


def test_a_worker_killed_mid_task_leaves_the_event_to_run_again_once(worker: Worker) -> None:
    from django.db import connections

    payment = PaymentFactory(gateway_reference="pi_kill")
    # Hold the payment row from another connection: the worker's task blocks inside its
    # transaction, mid-way, where we kill it.
    blocker = connections.create_connection("default")
    blocker.set_autocommit(False)
    with blocker.cursor() as cursor:
        cursor.execute("SELECT id FROM payments_payment WHERE id = %s FOR UPDATE", [payment.pk])
    try:
        _deliver("pi_kill", "evt_kill")
        wait_until(lambda: _blocked_on_lock(payment.pk))
        children = worker.child_pids()
        assert children, "the worker has a pool process"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        # The killed task rolled back: nothing happened yet.
        assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
        # The message comes back (acks_late, reject_on_worker_lost) to a new pool process.
        wait_until(lambda: _blocked_on_lock(payment.pk))
    finally:
        blocker.rollback()
        blocker.close()
    wait_until(lambda: _status("evt_kill") == "processed")
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.CAPTURED
    assert (
        PaymentAudit.objects.filter(
            object_id=str(payment.pk), action_type__endswith="payment.update"
        ).count()
        == 1
    )


def _blocked_on_lock(payment_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE %s AND datname = current_database()",
            ["%payments_payment%FOR UPDATE%"],
        )
        return cursor.fetchone()[0] > 0


def test_with_the_broker_down_webhooks_are_accepted_and_processed_once_it_is_back(
    broker: RedisServer, celery_app_on: None
) -> None:
    payment = PaymentFactory(gateway_reference="pi_down")
    broker.stop()
    assert _deliver("pi_down", "evt_down")["duplicate"] is False
    assert _status("evt_down") == "received"  # stored, not lost
    broker.start()
    worker = Worker(broker.url)
    worker.start()
    try:
        assert webhook_events_sweep(ahead_seconds=120) == 1
        wait_until(lambda: _status("evt_down") == "processed")
    finally:
        worker.stop()
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.CAPTURED
