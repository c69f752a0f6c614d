"""A real Celery worker, consuming from a real Redis, processing webhooks end to end.

Each test starts its own redis-server on a free loopback port (so it can stop and restart the
broker) and a worker subprocess on the test database. PostgreSQL only: the worker is another
process and must see the test's committed rows.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
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
from tests.payments.helpers import payment_lock_waiter_pid, payment_row_held

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


def _test_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    def __init__(self, broker_url: str, database_url: str | None = None, **extra_env: str) -> None:
        self.env = {
            **os.environ,
            "DEBUG": "1",
            "DATABASE_URL": database_url or _test_database_url(),
            "CELERY_BROKER_URL": broker_url,
            **extra_env,
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
            **_output(),
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


def _output() -> dict[str, Any]:
    """Subprocess output goes nowhere, or to TEST_SUBPROCESS_LOG when debugging a test."""
    path = os.environ.get("TEST_SUBPROCESS_LOG")
    if not path:
        return {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    log = open(path, "ab")  # noqa: SIM115 - the child process holds it open
    return {"stdout": log, "stderr": subprocess.STDOUT}


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
    payment = PaymentFactory(gateway_reference="pi_kill")
    # Hold the payment row from another connection: the worker's task blocks inside its
    # transaction, mid-way, where we kill it.
    with payment_row_held(payment.pk):
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
    wait_until(lambda: _status("evt_kill") == "processed")
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.CAPTURED
    assert _updates_recorded(payment) == 1


def _updates_recorded(payment: Payment) -> int:
    """The payment's update audit rows: one, however often its task ran."""
    return PaymentAudit.objects.filter(
        object_id=str(payment.pk), action_type__endswith="payment.update"
    ).count()


def _blocked_on_lock(payment_id: int) -> bool:
    return payment_lock_waiter_pid() is not None


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


# --- No retry is ever lost (issue 9, point 3) -----------------------------------------------


def _make_due(event_id: str) -> None:
    """Time passes: the event's next attempt is now."""
    from django.db import transaction
    from django.utils import timezone

    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(event_id=event_id)
        event.next_attempt_at = timezone.now() - timedelta(seconds=1)
        event.save()


def _event(event_id: str) -> WebhookEvent:
    return WebhookEvent.objects.get(event_id=event_id)


def test_a_lost_retry_is_run_by_the_sweep_until_the_attempts_are_spent_then_replayed(
    broker: RedisServer, celery_app_on: None, settings: Any, ops: Any
) -> None:
    from django.utils import timezone

    settings.WEBHOOK_MAX_ATTEMPTS = 3
    worker = Worker(broker.url, WEBHOOK_MAX_ATTEMPTS="3")
    worker.start()
    try:
        # Two events whose payments are not here yet: both fail, their retries scheduled.
        _deliver("pi_lost_a", "evt_lost_a")
        _deliver("pi_lost_b", "evt_lost_b")
        wait_until(lambda: {_event(e).attempts for e in ("evt_lost_a", "evt_lost_b")} == {1})
        first = _event("evt_lost_a")
        assert first.status == "failed" and first.next_attempt_at is not None
        # The worker stops and the broker restarts empty: the Celery retries are gone.
        worker.stop()
        broker.stop()
        broker.start()
        worker = Worker(broker.url, WEBHOOK_MAX_ATTEMPTS="3")
        worker.start()
        PaymentFactory(gateway_reference="pi_lost_a")
        wait_until(lambda: timezone.now() > first.next_attempt_at + timedelta(seconds=1))
        time.sleep(2)
        assert _event("evt_lost_a").attempts == 1  # due, and nothing ran it
        # The beat's sweep does.
        assert webhook_events_sweep() == 2
        wait_until(lambda: _status("evt_lost_a") == "processed")
        wait_until(lambda: _event("evt_lost_b").attempts == 2)
        assert _event("evt_lost_a").attempts == 2
        assert Payment.objects.get(gateway_reference="pi_lost_a").status == "captured"

        # The other one keeps failing until its attempts are spent.
        _make_due("evt_lost_b")
        assert webhook_events_sweep() == 1
        wait_until(lambda: _event("evt_lost_b").attempts == 3)
        spent = _event("evt_lost_b")
        assert (spent.status, spent.next_attempt_at) == ("failed", None)
        assert "No stripe payment with reference 'pi_lost_b'" in spent.last_error
        assert webhook_events_sweep(ahead_seconds=86_400) == 0

        # Shown on the operations screen and in the console, with its error.
        staff = Client()
        staff.force_login(ops)
        page = staff.get("/payments/webhooks/").content.decode()
        assert "evt_lost_b" in page and "evt_lost_a" not in page
        assert "3 of 3" in page and "pi_lost_b" in page
        console = Client()
        console.force_login(_superuser())
        listing = console.get(
            "/admin/payments/webhookevent/", {"attempts": "spent"}
        ).content.decode()
        assert "evt_lost_b" in listing and "evt_lost_a" not in listing

        # The payment shows up; replaying from the screen processes the event.
        PaymentFactory(gateway_reference="pi_lost_b")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        response = staff.post(
            f"/payments/webhooks/{spent.pk}/replay", {"csrfmiddlewaretoken": token.group(1)}
        )
        assert response.status_code == 302
        wait_until(lambda: _status("evt_lost_b") == "processed")
        assert _event("evt_lost_b").attempts == 1  # a fresh set of attempts
    finally:
        worker.stop()
    payment = Payment.objects.get(gateway_reference="pi_lost_b")
    assert payment.status == "captured"
    assert _updates_recorded(payment) == 1


def _superuser() -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_superuser("root", "root@example.com", "a-long-test-passw0rd")


def test_a_database_error_during_the_task_is_retried(worker: Worker) -> None:
    """A real fault: the worker's database session is terminated mid-task (what a PostgreSQL
    restart or a failover does to it), while the task waits for the payment's row lock."""
    payment = PaymentFactory(gateway_reference="pi_dberr")
    with payment_row_held(payment.pk):
        _deliver("pi_dberr", "evt_dberr")
        pid = wait_until(payment_lock_waiter_pid)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        cut_at = time.monotonic()
    # Nothing of the cut attempt was written; the task's own retry (10 s later) runs it.
    assert (_status("evt_dberr"), _event("evt_dberr").attempts) == ("received", 0)
    wait_until(lambda: _status("evt_dberr") == "processed", timeout=40)
    assert time.monotonic() - cut_at >= 9  # the retry's countdown, not an immediate rerun
    assert _event("evt_dberr").attempts == 1  # the cut attempt is not counted
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.CAPTURED
    assert _updates_recorded(payment) == 1


# --- A burst of webhooks through a broker restart and a PostgreSQL outage --------------------


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (never the shared server), on a free port, that
    the test may stop and start. initdb refuses to run as root: then it runs as `postgres`."""

    def __init__(self) -> None:
        bins = sorted(
            glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
        )
        if not bins:
            pytest.fail("PostgreSQL server binaries are needed (apt-get install postgresql)")
        self.bin = Path(bins[-1])
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="bo-private-pg-"))
        self.data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
                  "-w", "start")  # fmt: skip

    def stop(self) -> None:
        # fast: every session is cut at once, as in a crash or a failover.
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class WebServer:
    """The web side as its own process (Django's runserver), on the private database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=ROOT,
            env=env,
            **_output(),
        )
        wait_until(lambda: _connects(self.port), timeout=30)

    def post_stripe(self, body: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/webhooks/stripe/",
            data=body.encode(),
            headers={"Content-Type": "application/json", "Stripe-Signature": sh.sign(body)},
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def _manage(env: dict[str, str], code: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True) as db:
        cursor = db.execute(sql)
        return cursor.fetchall() if cursor.description else []


BURST_PAYMENTS = 150
BURST_REDELIVERIES = 40


def test_a_burst_of_webhooks_survives_a_broker_restart_and_a_postgresql_outage(
    broker: RedisServer,
) -> None:
    """Every event ends processed, with one effect each: the web side answers 500 while the
    database is down (Stripe delivers again), accepts while the broker is down (the sweep
    enqueues), and the worker's attempts cut by the outage are retried."""
    pg = PrivatePostgres()
    web = worker = None
    try:
        pg.start()
        _query(pg.url(), "CREATE DATABASE burst")
        env = {
            **os.environ,
            "DEBUG": "1",
            "DATABASE_URL": pg.url("burst"),
            "CELERY_BROKER_URL": broker.url,
            "STRIPE_WEBHOOK_SECRET": sh.SECRET,
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        _manage(
            env,
            "from tests.payments.factories import PaymentFactory\n"
            f"for i in range({BURST_PAYMENTS}):\n"
            "    PaymentFactory(gateway_reference=f'pi_burst_{i}')",
        )
        worker = Worker(broker.url, pg.url("burst"))
        worker.start()
        web = WebServer(env)

        events = [
            json.dumps(
                sh.event(
                    "payment_intent.succeeded", sh.intent(f"pi_burst_{i}", "succeeded"), f"evt_b{i}"
                )
            )
            for i in range(BURST_PAYMENTS)
        ]
        rng = random.Random(9)
        posts = events + rng.sample(events, BURST_REDELIVERIES)  # redeliveries
        rng.shuffle(posts)
        answers: dict[int, int] = {}
        resend: list[str] = []

        def deliver(batch: list[str]) -> None:
            for body in batch:
                status = web.post_stripe(body)
                answers[status] = answers.get(status, 0) + 1
                if status != 200:
                    resend.append(body)  # what Stripe does with a 5xx

        # The first event's payment is held by another session: the worker is mid-task on it,
        # with the rest queued behind, when the broker and then the database go away.
        import psycopg

        holder = psycopg.connect(pg.url("burst").replace("postgres://", "postgresql://"))
        first = json.loads(posts[0])["data"]["object"]["id"]
        holder.execute(
            "SELECT id FROM payments_payment WHERE gateway_reference = %s FOR UPDATE", [first]
        )
        # A third as usual, a fifth with the broker down, a sixth with the database down.
        broker_down = len(posts) // 3
        database_down = broker_down + len(posts) // 5
        database_up = database_down + len(posts) // 6
        deliver(posts[:broker_down])
        broker.stop()
        deliver(posts[broker_down:database_down])  # accepted and stored; the enqueue fails
        broker.start()
        pg.stop()
        deliver(posts[database_down:database_up])  # 500: the database is down
        holder.close()
        time.sleep(3)  # the worker's attempts meanwhile fail on the database
        pg.start()
        deliver(posts[database_up:])
        while resend:
            batch, resend[:] = list(resend), []
            deliver(batch)
        assert answers.get(500, 0) >= database_up - database_down and set(answers) <= {200, 500}, (
            answers
        )

        def all_processed() -> bool:
            # The beat's sweep, run every few seconds instead of every minute, taking the
            # events whose enqueue grace has not passed yet as due.
            _manage(
                env,
                "from payments.tasks import webhook_events_sweep\n"
                "webhook_events_sweep(ahead_seconds=120)",
            )
            rows = _query(
                pg.url("burst"), "SELECT status, count(*) FROM payments_webhookevent GROUP BY 1"
            )
            return dict(rows) == {"processed": BURST_PAYMENTS}

        wait_until(all_processed, timeout=180)
        captured = _query(
            pg.url("burst"),
            "SELECT count(*) FROM payments_payment WHERE status = 'captured' "
            "AND captured_amount = amount",
        )[0][0]
        assert captured == BURST_PAYMENTS
        effects = _query(
            pg.url("burst"),
            "SELECT object_id, count(*) FROM payment_audits WHERE object_type = 'payments.payment'"
            " AND action_type LIKE '%%payment.update' GROUP BY 1",
        )
        assert len(effects) == BURST_PAYMENTS and {n for _, n in effects} == {1}
        attempts = _query(
            pg.url("burst"), "SELECT attempts, count(*) FROM payments_webhookevent GROUP BY 1"
        )
        print(f"answers {answers}; attempts per event {dict(attempts)}")
        subprocess.run(
            [sys.executable, "manage.py", "verify_audit_chain"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
    finally:
        if web is not None:
            web.stop()
        if worker is not None:
            worker.stop()
        pg.remove()
