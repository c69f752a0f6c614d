"""compose.yaml, the Dockerfile and the Prometheus files, checked by reading them: no Docker
daemon runs here or in CI, so the containers cannot start (tests/test_stack.py starts the same
processes without them); promtool is not installed here, so the rules are parsed and their
metric names checked against what the back-office exposes (promtool runs when present)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from config import metrics

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "worker", "beat")
LONG_RUNNING = ("postgres", "redis", "web", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "redis", *APP_SERVICES}
    assert compose["services"]["postgres"]["image"].startswith("postgres:15")
    assert compose["services"]["redis"]["image"].startswith("redis:")
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["build"] == "." and service["image"] == "backoffice:latest"


def test_each_service_runs_its_process(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["web"]["command"] == ["gunicorn", "--config", "config/gunicorn.conf.py"]
    assert (ROOT / "config" / "gunicorn.conf.py").exists()
    assert services["worker"]["command"][:5] == ["celery", "-A", "config", "worker", "-l"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert services["migrate"]["restart"] == "no"


def test_the_app_services_get_production_settings_and_required_secrets(
    compose: dict[str, Any],
) -> None:
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["DEBUG"] == "0"
        assert "@postgres:5432/backoffice" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        # Compose refuses to start without them: no secret has a default.
        for secret in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "AUDIT_CHECKPOINT_SIGNING_KEY"):
            assert env[secret] == f"${{{secret}:?set {secret}}}"
        assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
        assert env["LOG_FORMAT"] == "json"
    web = compose["services"]["web"]["environment"]
    assert web["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/prometheus"
    assert compose["services"]["worker"]["environment"]["WORKER_METRICS_PORT"] == "9100"
    # Every variable the app services read is one the settings know.
    settings_text = (ROOT / "config" / "settings.py").read_text()
    known = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', settings_text))
    extra = {
        "WEB_CONCURRENCY",
        "GUNICORN_BIND",
        "PROMETHEUS_MULTIPROC_DIR",
        "WORKER_METRICS_PORT",
    }
    unknown = set(web) - known - extra
    assert not unknown, f"variables no setting reads: {unknown}"


def test_the_app_waits_for_a_healthy_database_broker_and_finished_migrations(
    compose: dict[str, Any],
) -> None:
    for name in ("web", "worker", "beat"):
        assert compose["services"][name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    assert compose["services"]["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"}
    }


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        check = compose["services"][name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check["interval"] and check["retries"] >= 3, name
    assert "/readyz" in " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert "inspect ping" in compose["services"]["worker"]["healthcheck"]["test"][1]


def test_the_dockerfile_runs_the_web_command_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-" in text
    assert "pip install --no-deps -r requirements.lock" in text
    assert "USER backoffice" in text
    cmd = re.search(r"^CMD (.+)$", text, re.MULTILINE)
    assert cmd is not None
    assert yaml.safe_load(cmd.group(1)) == ["gunicorn", "--config", "config/gunicorn.conf.py"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "var", ".git"} <= set(ignored)


def _registered_names() -> set[str]:
    """Every sample name this process's metrics can take (the workers' task counters too,
    which have no sample until a task runs)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
    }
    names = set()
    families = [*REGISTRY.collect()]
    names |= {
        f"{family.name}{suffix}"
        for family in families
        for suffix in suffixes.get(family.type, ("",))
    }
    return names


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "sum", "rate", "increase", "histogram_quantile", "time", "le", "bool",
}  # fmt: skip


@pytest.mark.django_db
def test_every_alert_names_a_series_we_expose(rules: list[dict[str, Any]], client: Any) -> None:
    from django.test import override_settings

    with override_settings(METRICS_TOKEN="t"):
        text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    # The gauges read from the database, as a scrape shows them, and every registered series.
    exposed = _registered_names() | set(re.findall(r"^# TYPE (\w+) ", text, re.MULTILINE))
    assert metrics.TASKS_FAILED._name + "_total" in exposed
    prometheus_own = {"up"}
    assert len(rules) >= 10
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Backoffice[A-Za-z]+", rule["alert"])
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])
        expr = re.sub(r'"[^"]*"', "", rule["expr"])  # label values
        expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
        expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
        expr = re.sub(r"\([^()]*\bby\b", "(", expr)
        names = {
            word
            for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr)
            if word not in PROMQL_WORDS
        }
        names -= {m for m in names if re.fullmatch(r"(le|view|task|job|instance)", m)}
        assert names, rule["alert"]
        unknown = names - exposed - prometheus_own
        assert not unknown, f"{rule['alert']} names series nobody exposes: {unknown}"


def test_the_example_scrape_configuration_loads_the_rules() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["backoffice-web"]["authorization"]["type"] == "Bearer"
    assert jobs["backoffice-worker"]["static_configs"][0]["targets"] == ["worker:9100"]


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed here (nor in CI); the rules are parsed and checked above",
)
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(ROOT / "deploy" / "prometheus" / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
