"""/metrics: the token, the request series, and the gauges read from the database in one query."""

from __future__ import annotations

import datetime
import io
from typing import Any

import pytest
import time_machine
from django.db import transaction
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audits.models import ChainVerification
from audits.tasks import audit_chain_verify
from config import metrics
from kyc.models import KycCase
from payments.approvals import REFUND_APPROVAL
from payments.models import ApprovalRequest, WebhookEvent
from tests.conftest import make_staff
from tests.helpers import row_counts
from tests.kyc.factories import KycCaseFactory

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-the-suite"
NAMED_SERIES = {
    "backoffice_http_requests_total",
    "backoffice_http_request_duration_seconds",
    "backoffice_webhook_backlog_events",
    "backoffice_webhook_backlog_oldest_age_seconds",
    "backoffice_webhook_events_failed_for_good",
    "backoffice_approvals_waiting",
    "backoffice_kyc_sla_breaches",
    "backoffice_audit_chain_last_verification_timestamp_seconds",
    "backoffice_audit_chain_last_verification_ok",
}


@pytest.fixture(autouse=True)
def _token(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN


def scrape(client: Client) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    series: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            series.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return series


def gauge(series: dict[str, Any], name: str) -> float:
    return series[name][()]


def test_metrics_need_the_token_and_write_nothing(client: Client, settings: Any) -> None:
    before = row_counts()
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.post("/metrics").status_code == 401  # the token before the method
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
    settings.METRICS_TOKEN = ""
    off = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert off.status_code == 403
    assert "METRICS_TOKEN" in off.json()["detail"]
    assert row_counts() == before


def test_metrics_expose_every_named_series(client: Client) -> None:
    client.get("/healthz")
    series = scrape(client)
    missing = {
        name for name in NAMED_SERIES if name not in series and f"{name}_count" not in series
    }
    assert not missing


def test_requests_are_counted_by_route_name_never_by_path(client: Client) -> None:
    before = scrape(client).get("backoffice_http_requests_total", {})
    client.get("/healthz")
    client.get("/no/such/page/with-an-id-12345")
    after = scrape(client)["backoffice_http_requests_total"]
    healthz = (("method", "GET"), ("status", "200"), ("view", "healthz"))
    unmatched = (("method", "GET"), ("status", "404"), ("view", "unmatched"))
    assert after[healthz] == before.get(healthz, 0) + 1
    assert after[unmatched] == before.get(unmatched, 0) + 1
    assert not any("12345" in value for labels in after for _, value in labels)


def _webhook(event_id: str, status: str, next_attempt_at: datetime.datetime | None) -> None:
    with transaction.atomic():
        WebhookEvent.objects.create(
            provider="stripe",
            event_id=event_id,
            event_type="customer.created",
            payload={"data": {"object": {}}},
            status=status,
            next_attempt_at=next_attempt_at,
        )


def test_gauges_read_the_state_in_one_query(client: Client, django_assert_num_queries: Any) -> None:
    now = timezone.now()
    with time_machine.travel(now - datetime.timedelta(minutes=10), tick=False):
        _webhook("evt_oldest", WebhookEvent.Status.RECEIVED, now)
    _webhook("evt_retrying", WebhookEvent.Status.FAILED, now + datetime.timedelta(minutes=1))
    _webhook("evt_spent", WebhookEvent.Status.FAILED, None)
    _webhook("evt_done", WebhookEvent.Status.PROCESSED, None)
    requester = make_staff("requester")
    with transaction.atomic():
        ApprovalRequest.objects.create(
            action=REFUND_APPROVAL,
            target_type="payments.refund",
            target_id="1",
            requested_by=requester,
            expires_at=now + datetime.timedelta(hours=48),
        )
    KycCaseFactory(status=KycCase.Status.SUBMITTED, due_at=now - datetime.timedelta(hours=2))
    KycCaseFactory(status=KycCase.Status.IN_REVIEW, due_at=now + datetime.timedelta(hours=2))
    KycCaseFactory(
        status=KycCase.Status.SUBMITTED,
        due_at=now - datetime.timedelta(hours=2),
        sla_paused_at=now - datetime.timedelta(hours=3),
    )
    audit_chain_verify()  # beat's daily task: the chain of everything written above verifies

    with django_assert_num_queries(1):  # the gauges' one SELECT of scalar subqueries
        values = metrics.gauges_read()
    assert values["backlog"] == 2
    assert 600 <= values["oldest_age"] < 700
    assert values["failed"] == 1
    assert values["approvals"] == 1
    assert values["kyc_breaches"] == 1
    run = ChainVerification.objects.get()
    assert run.ok and run.source == "task" and run.rows_checked > 0
    assert values["verified_at"] == run.created_at.timestamp()
    assert values["verified_ok"] == 1

    series = scrape(client)
    assert gauge(series, "backoffice_webhook_backlog_events") == 2
    assert gauge(series, "backoffice_webhook_events_failed_for_good") == 1
    assert gauge(series, "backoffice_approvals_waiting") == 1
    assert gauge(series, "backoffice_kyc_sla_breaches") == 1
    assert gauge(series, "backoffice_audit_chain_last_verification_ok") == 1


def test_the_scrape_costs_the_same_queries_at_any_size(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    for n in range(30):
        _webhook(f"evt_{n}", WebhookEvent.Status.RECEIVED, timezone.now())
    # The gauges' SELECT; the request's own (session, user) are not read without a cookie.
    with django_assert_max_num_queries(1):
        series = scrape(client)
    assert gauge(series, "backoffice_webhook_backlog_events") == 30


def test_a_failed_verification_shows_as_zero(client: Client) -> None:
    ChainVerification.objects.create(
        source="command", ok=False, rows_checked=10, chains=1, first_problem="row 3 differs"
    )
    series = scrape(client)
    assert gauge(series, "backoffice_audit_chain_last_verification_ok") == 0
    assert gauge(series, "backoffice_audit_chain_last_verification_timestamp_seconds") > 0


def test_celery_outcomes_are_counted_per_task() -> None:
    class Task:
        name = "payments.tasks.process_webhook_event"

    def value(counter: Any) -> float:
        return counter.labels(Task.name)._value.get()

    before = (value(metrics.TASKS_SUCCEEDED), value(metrics.TASKS_FAILED))
    before_retries = value(metrics.TASKS_RETRIED)
    from celery.signals import task_failure, task_retry, task_success

    task_success.send(sender=Task(), result=None)
    task_failure.send(sender=Task(), task_id="1", exception=RuntimeError("boom"))
    task_retry.send(sender=Task(), request=None, reason="later")
    assert value(metrics.TASKS_SUCCEEDED) == before[0] + 1
    assert value(metrics.TASKS_FAILED) == before[1] + 1
    assert value(metrics.TASKS_RETRIED) == before_retries + 1


def test_verify_audit_chain_keeps_its_result_for_monitoring(client: Client) -> None:
    from django.core.management import call_command

    KycCaseFactory()  # some audited rows to check
    call_command("verify_audit_chain", stdout=io.StringIO())
    run = ChainVerification.objects.get()
    assert (run.source, run.ok, run.first_problem) == ("command", True, "")
    assert run.rows_checked > 0 and run.chains >= 1
    series = scrape(client)
    assert gauge(series, "backoffice_audit_chain_last_verification_ok") == 1
    assert gauge(
        series, "backoffice_audit_chain_last_verification_timestamp_seconds"
    ) == pytest.approx(run.created_at.timestamp())
