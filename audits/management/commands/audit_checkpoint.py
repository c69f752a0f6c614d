"""Verify the rows since the last checkpoint, sign the chain heads, export the checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audits.checkpoints import CheckpointRefused, checkpoint_create, checkpoints_export


class Command(BaseCommand):
    help = (
        "Verify the payment_audits rows appended since the last good checkpoint, sign the chain "
        "heads (Ed25519, AUDIT_CHECKPOINT_SIGNING_KEY) and store the checkpoint; then write "
        "every checkpoint not yet exported to AUDIT_CHECKPOINT_EXPORT_DIR (or --export-dir). "
        "Beat runs the same every hour (audits.tasks.audit_checkpoint)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--export-dir", help="where checkpoint files go (default AUDIT_CHECKPOINT_EXPORT_DIR)"
        )
        parser.add_argument(
            "--export-only", action="store_true", help="export the checkpoints, sign none"
        )
        parser.add_argument("--workers", type=int, default=None, help="verification processes")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["export_only"]:
            self.stdout.write("Verifying the rows since the last good checkpoint...")

            def progress(done: int, total: int) -> None:
                self.stdout.write(f"  checked {done:,} of {total:,} rows")

            try:
                checkpoint, report = checkpoint_create(
                    progress=progress, workers=options["workers"]
                )
            except CheckpointRefused as exc:
                raise CommandError(f"no checkpoint signed: {exc}") from exc
            self.stdout.write(
                f"Checked {report.rows_checked:,} rows from {report.started_from}; signed "
                f"{checkpoint} with key {checkpoint.key_id}."
            )
        directory = options.get("export_dir") or settings.AUDIT_CHECKPOINT_EXPORT_DIR
        if not directory:
            if options["export_only"]:
                raise CommandError(
                    "No export directory: set AUDIT_CHECKPOINT_EXPORT_DIR or pass --export-dir."
                )
            self.stdout.write("AUDIT_CHECKPOINT_EXPORT_DIR is not set: nothing exported.")
            return
        self.stdout.write(f"Exporting checkpoints to {directory}...")
        try:
            written = [str(path) for path in checkpoints_export(Path(directory))]
        except OSError as exc:
            raise CommandError(f"cannot write to {directory}: {exc}") from exc
        for path in written:
            self.stdout.write(f"  wrote {path}")
        self.stdout.write(self.style.SUCCESS(f"OK: {len(written)} checkpoint file(s) written."))
