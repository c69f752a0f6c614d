from __future__ import annotations

import os

import pytest


def test_healthz_says_the_process_is_up(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_the_database(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok"},
    }


def _readyz_with_broker(client, settings, broker_url: str):
    settings.CELERY_BROKER_URL = broker_url
    from config.celery import app

    app.conf.broker_url = settings.CELERY_BROKER_URL
    try:
        return client.get("/readyz")
    finally:
        app.conf.broker_url = None


@pytest.mark.django_db
def test_readyz_reports_an_unreachable_broker(client, settings) -> None:
    # Nothing listens on port 1.
    response = _readyz_with_broker(client, settings, "redis://127.0.0.1:1/0")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("broker unreachable")


@pytest.mark.django_db
@pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"),
    reason="needs a Redis broker: set TEST_REDIS_URL (CI does)",
)
def test_readyz_reaches_a_real_broker(client, settings) -> None:
    response = _readyz_with_broker(client, settings, os.environ["TEST_REDIS_URL"])
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fixture", "target"),
    [
        ("analyst", "/overview/"),
        ("officer", "/overview/"),
        ("ops", "/overview/"),
        ("auditor", "/overview/"),
        ("administrator", "/overview/"),
    ],
)
def test_home_sends_each_role_to_the_overview(client, request, fixture, target) -> None:
    client.force_login(request.getfixturevalue(fixture))
    assert client.get("/")["Location"] == target


def test_home_asks_anonymous_visitors_to_sign_in(client) -> None:
    assert "/admin/login/" in client.get("/")["Location"]


@pytest.mark.django_db
def test_readyz_is_unavailable_while_a_migration_is_not_applied(client, monkeypatch) -> None:
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    from config import health

    monkeypatch.setattr(health, "_migrations_applied", False)
    # As if the newest audits migration had not run yet (rolled back with the test).
    newest = next(
        name for app, name in MigrationLoader(connection).graph.leaf_nodes() if app == "audits"
    )
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = 'audits' AND name = %s", [newest])
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == (
        f"1 migration(s) not applied, first audits.{newest}"
    )
    assert response.json()["status"] == "unavailable"
