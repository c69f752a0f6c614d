from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import close_old_connections, connection, connections
from django.db.backends.base.operations import BaseDatabaseOperations

from audits import context, roles, triggers


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        # SQLite only: the browser test's live server threads try to close the in-memory
        # database they share with the test process, after the test. Harmless.
        config.addinivalue_line(
            "filterwarnings", "ignore::pytest.PytestUnhandledThreadExceptionWarning"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL); SQLite lacks this")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _flush_past_append_only_triggers() -> Iterator[None]:
    """Transactional tests end with a flush (TRUNCATE on PostgreSQL, DELETE on SQLite), which
    the append-only triggers refuse, as they should. In the test database only, lift the
    triggers for the flush and put them back."""
    original = BaseDatabaseOperations.execute_sql_flush

    def flush_with_triggers_lifted(self: BaseDatabaseOperations, sql_list: list[str]) -> None:
        vendor = self.connection.vendor
        triggers.execute(self.connection, triggers.uninstall_sql(vendor))
        try:
            original(self, sql_list)
        finally:
            triggers.execute(self.connection, triggers.install_sql(vendor))

    BaseDatabaseOperations.execute_sql_flush = flush_with_triggers_lifted  # type: ignore[method-assign]
    yield
    BaseDatabaseOperations.execute_sql_flush = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _fresh_system_user_cache() -> None:
    context.forget_system_user()


def make_staff(username: str, role: str | None = None, **extra: Any) -> User:
    user = User.objects.create_user(
        username=username,
        password="a-long-test-passw0rd",
        is_staff=True,
        email=f"{username}@example.com",
        **extra,
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def analyst(db: None) -> User:
    return make_staff("analyst", roles.KYC_ANALYST)


@pytest.fixture
def officer(db: None) -> User:
    return make_staff("officer", roles.COMPLIANCE_OFFICER)


@pytest.fixture
def ops(db: None) -> User:
    return make_staff("ops", roles.PAYMENTS_OPERATIONS)


@pytest.fixture
def auditor(db: None) -> User:
    return make_staff("auditor", roles.AUDITOR)


@pytest.fixture
def administrator(db: None) -> User:
    return make_staff("administrator", roles.ADMINISTRATOR)


def run_at_once(*actions: Callable[[], Any]) -> list[Any]:
    """Run each action in its own thread (its own database connection), started together.
    Returns each action's result or the exception it raised."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def worker(index: int, action: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = action()
        except Exception as exc:  # collected for the test to assert on
            results[index] = exc
        finally:
            close_old_connections()
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


LOCALSTRIPE_PYTHON = Path(__file__).resolve().parent.parent / ".venv-tools/localstripe/bin/python"
LOCALSTRIPE_SERVE = (
    "import sys; from aiohttp import web; from localstripe.server import app; "
    "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe_server() -> Iterator[str]:
    """A local Stripe API server (the localstripe package), on loopback only."""
    if not LOCALSTRIPE_PYTHON.exists():
        pytest.fail("localstripe is not installed: run `make test-tools` (make test does)")
    port = free_port()
    process = subprocess.Popen(
        [str(LOCALSTRIPE_PYTHON), "-c", LOCALSTRIPE_SERVE, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            request = urllib.request.Request(
                f"{base}/v1/customers", headers={"Authorization": "Bearer sk_test_ready"}
            )
            with urllib.request.urlopen(request, timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("localstripe did not start")
            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def local_stripe(localstripe_server: str, settings: Any) -> str:
    """Stripe configured against a fresh local Stripe server."""
    request = urllib.request.Request(f"{localstripe_server}/_config/data", method="DELETE")
    urllib.request.urlopen(request, timeout=5).close()
    settings.STRIPE_API_KEY = "sk_test_local"
    settings.STRIPE_API_BASE = localstripe_server
    return localstripe_server


@pytest.fixture
def local_braintree(settings: Any) -> Iterator[Any]:
    """Braintree configured against our local Braintree server (tests/payments)."""
    from tests.payments.braintree_samples import use_test_keys
    from tests.payments.braintree_server import BraintreeServer

    server = BraintreeServer()
    use_test_keys(settings, server.url)
    yield server
    server.stop()
