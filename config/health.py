"""Liveness and readiness probes: JSON, no authentication, no side effects.

`/readyz` checks the database, the broker (when one is set) and that every migration this
code ships is applied: a web process started before `migrate` finished is not ready.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means not ready
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_broker() -> str | None:
    if not settings.CELERY_BROKER_URL:
        return None
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises many transport-specific errors
        return f"broker unreachable: {type(exc).__name__}"
    return None


# Once every migration of this code is applied it stays so for the life of the process (a
# deploy migrates forwards before it starts new code), so the probe stops reading the graph.
_migrations_applied = False


def _check_migrations() -> str | None:
    global _migrations_applied
    if _migrations_applied:
        return None
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:  # the database went away between the two checks
        return f"migrations unknown: {type(exc).__name__}"
    if plan:
        first = plan[0][0]
        return f"{len(plan)} migration(s) not applied, first {first.app_label}.{first.name}"
    _migrations_applied = True
    return None


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    database = _check_database()
    checks = {
        "database": database,
        "migrations": _check_migrations() if database is None else "not checked: no database",
        "broker": _check_broker(),
    }
    failures = {name: error for name, error in checks.items() if error}
    body = {
        "status": "ok" if not failures else "unavailable",
        "checks": {
            name: (error or "ok")
            for name, error in checks.items()
            if name != "broker" or settings.CELERY_BROKER_URL
        },
    }
    return JsonResponse(body, status=503 if failures else 200)
