from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.management.base import BaseCommand, OutputWrapper

from . import context


class AuditedCommand(BaseCommand):
    """A management command whose changes are audited as the system, naming the command."""

    def execute(self, *args: Any, **options: Any) -> Any:
        name = type(self).__module__.rsplit(".", 1)[-1]
        with context.bind(source="command", detail=name):
            return super().execute(*args, **options)


def write_labelled(stream: OutputWrapper, label: str, lines: Iterable[str]) -> None:
    """Each line of a command's report under its label ("FIXED ...", "REFUSED ..."), one a row."""
    for line in lines:
        stream.write(f"{label} {line}")
