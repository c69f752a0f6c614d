"""Prometheus metrics: requests, Celery tasks, and the back-office's own gauges.

`/metrics` (web) answers in the Prometheus text format. It is protected by a token from the
environment: with METRICS_TOKEN set, a scrape sends `Authorization: Bearer <token>`; without
it the endpoint is off (403). Under gunicorn the request series are summed over
its worker processes (prometheus_client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR, set by
config/gunicorn.conf.py). Workers expose their task series on WORKER_METRICS_PORT.

The gauges are read from the database at scrape time, in one statement of indexed scalar
subqueries (see `BackofficeCollector`), so a scrape costs one query whatever the table sizes.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from celery.signals import (
    task_failure,
    task_retry,
    task_success,
    worker_process_shutdown,
    worker_ready,
)
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REQUESTS = Counter(
    "backoffice_http_requests",
    "HTTP requests answered, by method, route (the URL name) and status code",
    ["method", "view", "status"],
)
REQUEST_SECONDS = Histogram(
    "backoffice_http_request_duration_seconds",
    "Time to answer an HTTP request (to the first byte of a streamed one), by method and route",
    ["method", "view"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
TASKS_SUCCEEDED = Counter(
    "backoffice_celery_tasks_succeeded", "Celery tasks that returned, by task name", ["task"]
)
TASKS_FAILED = Counter(
    "backoffice_celery_task_failures",
    "Celery task runs that raised (and will not be retried by Celery), by task name",
    ["task"],
)
TASKS_RETRIED = Counter(
    "backoffice_celery_task_retries", "Celery task runs that asked to be retried", ["task"]
)


def _multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class RequestMetricsMiddleware:
    """Counts and times every request. The route is the URL's name (bounded), never the path."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name if match is not None else "") or "unmatched"
        method = request.method if request.method in _METHODS else "other"
        REQUEST_SECONDS.labels(method, view).observe(time.perf_counter() - started)
        REQUESTS.labels(method, view, str(response.status_code)).inc()
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class BackofficeCollector(Collector):
    """The back-office's state, read at scrape time in one statement."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        values = gauges_read()
        for name, documentation, value in (
            (
                "backoffice_webhook_backlog_events",
                "Webhook events waiting for an attempt (received, processing or to retry)",
                values["backlog"],
            ),
            (
                "backoffice_webhook_backlog_oldest_age_seconds",
                "Age of the oldest webhook event still waiting (0 when none waits)",
                values["oldest_age"],
            ),
            (
                "backoffice_webhook_events_failed_for_good",
                "Webhook events that spent their attempts and wait for a person to replay them",
                values["failed"],
            ),
            (
                "backoffice_approvals_waiting",
                "Maker-checker requests waiting for a second person",
                values["approvals"],
            ),
            (
                "backoffice_kyc_sla_breaches",
                "Open KYC cases past their due time (SLA not paused)",
                values["kyc_breaches"],
            ),
            (
                "backoffice_audit_chain_last_verification_timestamp_seconds",
                "When the audit hash chains were last verified (Unix time; 0: never)",
                values["verified_at"],
            ),
            (
                "backoffice_audit_chain_last_verification_ok",
                "1 when the last verification of the audit hash chains found them intact",
                values["verified_ok"],
            ),
            (
                "backoffice_audit_default_partition_rows",
                "Audit rows in payment_audits' DEFAULT partition, whose month had no partition "
                "(counted up to 100,000; 0 on a plain table)",
                values["audit_default_rows"],
            ),
        ):
            yield GaugeMetricFamily(name, documentation, value=value)


# The DEFAULT partition's rows (audits/partitions.py), in the same statement even where the
# table does not exist (a plain payment_audits): query_to_xml plans its query only when run.
_DEFAULT_PARTITION_ROWS = (
    "CASE WHEN to_regclass('payment_audits_default') IS NULL THEN 0 ELSE "
    "(xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM (SELECT 1 FROM "
    "payment_audits_default LIMIT 100000) AS capped', false, true, '')))[1]::text::bigint END"
)


def gauges_read() -> dict[str, float]:
    """Every gauge from one SELECT of scalar subqueries, each served by an index."""
    from django.db import connection
    from django.utils import timezone

    from audits.models import ChainVerification
    from kyc.models import KycCase
    from payments.models import ApprovalRequest, WebhookEvent

    now = timezone.now()
    webhooks = connection.ops.quote_name(WebhookEvent._meta.db_table)
    approvals = connection.ops.quote_name(ApprovalRequest._meta.db_table)
    cases = connection.ops.quote_name(KycCase._meta.db_table)
    runs = connection.ops.quote_name(ChainVerification._meta.db_table)
    open_statuses = [
        KycCase.Status.SUBMITTED,
        KycCase.Status.IN_REVIEW,
        KycCase.Status.ESCALATED,
    ]
    placeholders = ", ".join(["%s"] * len(open_statuses))
    # Table names come from our models' Meta, every value is a parameter.
    sql = (
        "SELECT "  # noqa: S608  # nosec B608
        f"(SELECT COUNT(*) FROM {webhooks} WHERE next_attempt_at IS NOT NULL), "
        # OFFSET 0 keeps the planner on the partial index of waiting events: without it, it
        # walks received_at from the oldest event, through the whole processed history.
        f"(SELECT MIN(received_at) FROM (SELECT received_at FROM {webhooks} "
        "WHERE next_attempt_at IS NOT NULL OFFSET 0) AS waiting), "
        f"(SELECT COUNT(*) FROM {webhooks} WHERE status = %s AND next_attempt_at IS NULL), "
        f"(SELECT COUNT(*) FROM {approvals} WHERE status = %s), "
        f"(SELECT COUNT(*) FROM {cases} WHERE status IN ({placeholders}) "
        f"AND sla_paused_at IS NULL AND due_at < %s), "
        f"(SELECT created_at FROM {runs} ORDER BY created_at DESC LIMIT 1), "
        f"(SELECT ok FROM {runs} ORDER BY created_at DESC LIMIT 1), "
        f"{_DEFAULT_PARTITION_ROWS if connection.vendor == 'postgresql' else '0'}"
    )
    params: list[Any] = [
        WebhookEvent.Status.FAILED,
        ApprovalRequest.Status.PENDING,
        *open_statuses,
        now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (backlog, oldest, failed, waiting, breaches, verified_at, verified_ok, default_rows) = (
            cursor.fetchone()
        )
    oldest = _as_datetime(oldest)
    verified_at = _as_datetime(verified_at)
    return {
        "backlog": float(backlog),
        "oldest_age": max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        "failed": float(failed),
        "approvals": float(waiting),
        "kyc_breaches": float(breaches),
        "verified_at": verified_at.timestamp() if verified_at else 0.0,
        "verified_ok": 1.0 if verified_ok else 0.0,
        "audit_default_rows": float(default_rows or 0),
    }


def _as_datetime(value: Any) -> Any:
    # SQLite answers a subquery's datetime as text; PostgreSQL as an aware datetime.
    if isinstance(value, str):
        from django.utils.dateparse import parse_datetime

        parsed = parse_datetime(value)
        if parsed is not None and parsed.tzinfo is None:
            from datetime import UTC

            parsed = parsed.replace(tzinfo=UTC)
        return parsed
    return value


def exposition() -> bytes:
    """The text a scrape receives: this process's (or every gunicorn worker's) series, then
    the gauges read from the database."""
    if _multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        own = generate_latest(registry)
    else:
        own = generate_latest(REGISTRY)
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(BackofficeCollector())
    return own + generate_latest(gauges)


def _authorised(request: HttpRequest) -> JsonResponse | None:
    token: str = settings.METRICS_TOKEN
    if not token:
        return JsonResponse(
            {"detail": "metrics are off: set METRICS_TOKEN and scrape with it"}, status=403
        )
    sent = request.headers.get("Authorization", "")
    scheme, _, value = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token.encode()):
        response = JsonResponse(
            {"detail": "send Authorization: Bearer <METRICS_TOKEN>"}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return None


def metrics_view(request: HttpRequest) -> HttpResponse:
    # The token first, whatever the method: a stranger learns nothing, not even the verbs.
    refused = _authorised(request)
    if refused is not None:
        return refused
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


# Celery workers: count outcomes in the process that ran the task (a prefork child writes to
# PROMETHEUS_MULTIPROC_DIR), and serve them from the worker's main process.
def _succeeded(sender: Any = None, **kwargs: Any) -> None:
    TASKS_SUCCEEDED.labels(getattr(sender, "name", "unknown")).inc()


def _failed(sender: Any = None, **kwargs: Any) -> None:
    TASKS_FAILED.labels(getattr(sender, "name", "unknown")).inc()


def _retried(sender: Any = None, **kwargs: Any) -> None:
    TASKS_RETRIED.labels(getattr(sender, "name", "unknown")).inc()


def _serve_worker_metrics(**kwargs: Any) -> None:
    port = os.environ.get("WORKER_METRICS_PORT", "")
    if not port:
        return
    from prometheus_client import start_http_server

    registry: CollectorRegistry = REGISTRY
    if _multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    # Inside the worker's container: the scraper reaches it over the internal network only.
    address = os.environ.get("WORKER_METRICS_ADDRESS", "0.0.0.0")  # noqa: S104  # nosec B104
    start_http_server(int(port), addr=address, registry=registry)


def _child_exited(pid: int | None = None, **kwargs: Any) -> None:
    if _multiprocess_dir():
        multiprocess.mark_process_dead(pid or os.getpid())


def connect_worker() -> None:
    task_success.connect(_succeeded, dispatch_uid="config.metrics.success", weak=False)
    task_failure.connect(_failed, dispatch_uid="config.metrics.failure", weak=False)
    task_retry.connect(_retried, dispatch_uid="config.metrics.retry", weak=False)
    worker_ready.connect(_serve_worker_metrics, dispatch_uid="config.metrics.serve", weak=False)
    worker_process_shutdown.connect(
        _child_exited, dispatch_uid="config.metrics.child_exit", weak=False
    )
