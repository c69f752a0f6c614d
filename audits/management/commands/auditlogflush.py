"""Shadows django-auditlog's auditlogflush: audit rows are never removed."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Refused: audit log entries are append-only and cannot be flushed."

    def add_arguments(self, parser: Any) -> None:
        # Accept upstream's options so that scripts using them get this refusal, not a usage error.
        parser.add_argument("-y", "--yes", action="store_true")
        parser.add_argument("-b", "--before-date")
        parser.add_argument("-t", "--truncate", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        raise CommandError(
            "Refused: the audit trail is append-only (regulatory record). Log entries cannot "
            "be deleted, by this command or otherwise; the database rejects it too."
        )
