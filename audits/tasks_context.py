"""Celery tasks run with an audit context naming the task, attributed to the system user."""

from __future__ import annotations

from typing import Any

from celery.signals import task_postrun, task_prerun

from . import context

_tokens: dict[str, object] = {}


def _bind_task(task_id: str, task: Any, **kwargs: Any) -> None:
    _tokens[task_id] = context.push(
        context.AuditContext(source="task", detail=task.name, request_id=task_id.replace("-", ""))
    )


def _unbind_task(task_id: str, **kwargs: Any) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        context.pop(token)


def connect() -> None:
    task_prerun.connect(_bind_task, dispatch_uid="audits.task_prerun", weak=False)
    task_postrun.connect(_unbind_task, dispatch_uid="audits.task_postrun", weak=False)
