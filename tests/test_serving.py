"""Production serving: make serve's checks, gunicorn's configuration, persistent connections,
PgBouncer's needs (server-side cursors inside a transaction)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from audits.models import PaymentAudit
from config.querying import streamed
from tests.payments.factories import PaymentFactory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import serve_check  # noqa: E402

PRODUCTION = {
    "SECRET_KEY": "k" * 50,
    "FIELD_ENCRYPTION_KEYS": "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE=",
    "AUDIT_CHECKPOINT_SIGNING_KEY": "Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLXNlY3JldCE=",
    "ALLOWED_HOSTS": "backoffice.example.com",
    "DATABASE_URL": "postgres://app@db:5432/backoffice",
    "CELERY_BROKER_URL": "redis://redis:6379/0",
}


def test_serve_check_names_every_missing_variable() -> None:
    errors, _ = serve_check.problems({})
    text = "\n".join(errors)
    for name in serve_check.REQUIRED:
        assert name in text


def test_serve_check_passes_a_complete_production_environment() -> None:
    errors, warnings = serve_check.problems(
        PRODUCTION | {"METRICS_TOKEN": "t", "STRIPE_WEBHOOK_SECRET": "whsec_1"}
    )
    assert errors == []
    assert all("CSRF_TRUSTED_ORIGINS" in w or "SECURE_PROXY_SSL" in w for w in warnings)


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"DATABASE_URL": "sqlite:///var/db.sqlite3"}, "must be PostgreSQL"),
        ({"DEBUG": "1"}, "DEBUG: must be off"),
        ({"SANDBOX_ENABLED": "on"}, "SANDBOX_ENABLED"),
        ({"SECRET_KEY": "  "}, "SECRET_KEY"),
    ],
)
def test_serve_check_refuses_what_production_cannot_run(
    override: dict[str, str], complaint: str
) -> None:
    errors, _ = serve_check.problems(PRODUCTION | override)
    assert any(complaint in error for error in errors)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_serve_says_what_is_missing_and_starts_nothing(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/bin/.installed", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "production settings are incomplete" in result.stdout
    for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "ALLOWED_HOSTS", "DATABASE_URL"):
        assert f"  {name}:" in result.stdout
    assert "gunicorn" not in result.stdout.split("incomplete", 1)[1]


def _settings_in_a_fresh_process(**env: str) -> dict[str, Any]:
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps({'db': settings.DATABASES, 'log': settings.LOG_FORMAT}, default=str))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("CONN_MAX_AGE", "LOG_FORMAT")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean | {"DJANGO_SETTINGS_MODULE": "config.settings"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_production_keeps_connections_and_checks_them_before_reuse() -> None:
    production = _settings_in_a_fresh_process(DEBUG="0", **PRODUCTION)
    default = production["db"]["default"]
    assert default["CONN_MAX_AGE"] == 60
    assert default["CONN_HEALTH_CHECKS"] is True
    assert default["DISABLE_SERVER_SIDE_CURSORS"] is False
    assert "replica" not in production["db"]
    assert production["log"] == "json"


def test_pgbouncer_settings_and_the_replica_come_from_the_environment() -> None:
    configured = _settings_in_a_fresh_process(
        DEBUG="0",
        **PRODUCTION,
        CONN_MAX_AGE="300",
        DISABLE_SERVER_SIDE_CURSORS="1",
        DATABASE_REPLICA_URL="postgres://reader@replica:5432/backoffice",
    )
    for alias in ("default", "replica"):
        assert configured["db"][alias]["CONN_MAX_AGE"] == 300
        assert configured["db"][alias]["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert configured["db"]["replica"]["HOST"] == "replica"


def test_gunicorn_loads_its_configuration_and_the_application(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-c",
            "config/gunicorn.conf.py",
            "--check-config",
            "--print-config",
        ],
        cwd=ROOT,
        env=os.environ
        | {
            "DEBUG": "1",
            "WEB_CONCURRENCY": "3",
            "GUNICORN_TIMEOUT": "20",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed = dict(
        (line.split("=", 1)[0].strip(), line.split("=", 1)[1].strip())
        for line in result.stdout.splitlines()
        if "=" in line
    )
    assert printed["workers"] == "3"
    assert printed["timeout"] == "20"
    assert printed["wsgi_app"] == "config.wsgi:application"
    assert printed["logger_class"] == "config.gunicorn_logging.JsonLogger"
    assert printed["control_socket_disable"] == "True"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_exports_read_through_a_server_side_cursor_inside_a_transaction() -> None:
    """Behind PgBouncer in transaction mode a cursor must not outlive its transaction."""
    PaymentFactory.create_batch(3)
    assert not connection.in_atomic_block
    rows = streamed(PaymentAudit.objects.order_by("pk"), chunk_size=1)
    first = next(rows)
    assert connection.in_atomic_block  # the cursor lives in this transaction only
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_cursors WHERE NOT is_holdable")
        assert cursor.fetchone()[0] == 1  # the queryset's named cursor, WITHOUT HOLD
    rest = list(rows)
    assert [first, *rest] == list(PaymentAudit.objects.order_by("pk"))
    assert not connection.in_atomic_block
