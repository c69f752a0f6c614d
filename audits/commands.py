from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from . import context


class AuditedCommand(BaseCommand):
    """A management command whose changes are audited as the system, naming the command."""

    def execute(self, *args: Any, **options: Any) -> Any:
        name = type(self).__module__.rsplit(".", 1)[-1]
        with context.bind(source="command", detail=name):
            return super().execute(*args, **options)
