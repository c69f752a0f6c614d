"""One id per request, in every log line it causes, the audit rows it writes and its tasks' logs.

A well-formed `X-Request-ID` from the client or the proxy in front (a UUID, or 8 to 32 letters,
digits, `_` or `-`) is kept, so one id follows a request from the load balancer to the worker;
anything else is replaced by a fresh one. Either way the response carries it back.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
# The audit trail keeps 32 characters; a UUID's hyphens are dropped to fit.
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,32}$")

current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def well_formed(value: str | None) -> str | None:
    """The id to keep from a header value, or None when it is not one we accept."""
    if not value:
        return None
    if _UUID.match(value):
        return value.replace("-", "").lower()
    if _TOKEN.match(value):
        return value
    return None


def new() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """First in MIDDLEWARE, so that every later middleware's log lines carry the id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = well_formed(request.headers.get(HEADER)) or new()
        request.request_id = request_id  # type: ignore[attr-defined]
        # Cleared when the response is closed (request_finished), not here: Django logs a 4xx
        # or 5xx after the middleware has returned, and a streamed body is read later still.
        current.set(request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


def _request_finished(**kwargs: Any) -> None:
    current.set("")


# Celery: the id travels in the message headers and is bound while the task runs, so the
# worker's log lines for a webhook's processing carry the webhook request's id.
def _publish(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = current.get()
    if headers is not None and request_id:
        headers["request_id"] = request_id


_task_tokens: dict[str, contextvars.Token[str]] = {}


def _task_started(task_id: str, task: Any, **kwargs: Any) -> None:
    request_id = well_formed(getattr(task.request, "request_id", None))
    if request_id:
        _task_tokens[task_id] = current.set(request_id)


def _task_finished(task_id: str, **kwargs: Any) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        current.reset(token)


def connect() -> None:
    request_finished.connect(_request_finished, dispatch_uid="config.request_id.finished")
    before_task_publish.connect(_publish, dispatch_uid="config.request_id.publish", weak=False)
    task_prerun.connect(_task_started, dispatch_uid="config.request_id.prerun", weak=False)
    task_postrun.connect(_task_finished, dispatch_uid="config.request_id.postrun", weak=False)
