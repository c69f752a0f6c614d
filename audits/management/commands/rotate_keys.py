"""Move every encrypted value and file to the newest key in FIELD_ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from audits import security
from audits.commands import AuditedCommand
from audits.crypto import rotation
from audits.crypto.errors import CryptoError
from audits.crypto.keys import provider


class Command(AuditedCommand):
    help = (
        "Re-wrap every data key with the newest key (re-encrypting values of an older algorithm "
        "or still in the clear), in batches; safe to interrupt and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        newest = provider().key_ids()[0]
        outcome: dict[str, Any] = {"key_id": newest, "batch_size": batch_size}

        def progress(label: str, done: int, total: int) -> None:
            self.stdout.write(f"{label}: {done}/{total}")

        try:
            outcome["moved"] = rotation.rotate(batch_size=batch_size, progress=progress)
            outcome["complete"] = True
        except (CryptoError, KeyboardInterrupt) as exc:
            outcome["complete"] = False
            outcome["stopped_by"] = type(exc).__name__
            raise CommandError(f"Rotation stopped ({exc!s}); run it again to resume.") from exc
        finally:
            # One security-trail row per run, finished or not.
            security.record(
                action="keys.rotate", object_type="crypto.key", object_id=newest, after=outcome
            )
        moved = sum(outcome["moved"].values())
        self.stdout.write(self.style.SUCCESS(f"{moved} values and files now on key {newest}."))
