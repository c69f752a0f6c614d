from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audits import cold_storage, partitions
from audits.commands import write_labelled
from audits.models import AuditDetachment


class Command(BaseCommand):
    help = (
        "The monthly partitions of payment_audits (PostgreSQL). Without an option, lists them "
        "and the rows in DEFAULT. --ensure creates the current month's and --months-ahead "
        "more; --detach YYYY-MM --export DIR exports a past month's rows with a manifest and "
        "detaches its partition; --verify-file MANIFEST verifies such an export on its own."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--ensure", action="store_true", help="create partitions ahead")
        action.add_argument("--detach", metavar="YYYY-MM", help="the past month to detach")
        action.add_argument("--verify-file", metavar="MANIFEST", help="an exported month")
        parser.add_argument(
            "--months-ahead",
            type=int,
            default=partitions.MONTHS_AHEAD,
            help=f"with --ensure: months after the current one (default {partitions.MONTHS_AHEAD})",
        )
        parser.add_argument("--export", metavar="DIR", help="with --detach: where the files go")
        parser.add_argument(
            "--drop",
            action="store_true",
            help="with --detach: drop the detached table once exported (default: keep it)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verify_file"]:
            self._verify_file(Path(options["verify_file"]))
            return
        if not partitions.is_partitioned():
            raise CommandError(
                "payment_audits is not partitioned on this database (SQLite keeps a plain table)."
            )
        if options["ensure"]:
            self._ensure(options["months_ahead"])
        elif options["detach"]:
            self._detach(options["detach"], options["export"], options["drop"])
        else:
            self._list()
        self._report_default()

    def _ensure(self, months_ahead: int) -> None:
        if not 0 <= months_ahead <= 24:
            raise CommandError("--months-ahead must be between 0 and 24.")
        result = partitions.ensure_ahead(months_ahead)
        write_labelled(self.stdout, "created", result.created)
        write_labelled(self.stdout, "exists ", result.existing)
        write_labelled(self.stderr, "REFUSED", result.refused)
        if result.refused:
            raise CommandError(
                "some partitions could not be created (rows of their month in DEFAULT)"
            )

    def _detach(self, month_text: str, export: str | None, drop: bool) -> None:
        if not export:
            raise CommandError("--detach needs --export DIR: the rows are exported first.")
        try:
            month = partitions.parse_month(month_text)
            done = cold_storage.partition_detach(month, Path(export), drop=drop)
        except partitions.PartitionError as exc:
            raise CommandError(f"detach refused: {exc}. Nothing was changed.") from exc
        self.stdout.write(f"exported {done.rows:,} rows to {done.file} (sha256 {done.sha256})")
        self.stdout.write(f"manifest {done.manifest}")
        kept = "dropped" if done.dropped else "kept as a table outside the trail (DROP it later)"
        self.stdout.write(self.style.SUCCESS(f"detached {done.partition}; {kept}."))

    def _list(self) -> None:
        for part in partitions.attached():
            rows = "not analyzed" if part.estimated_rows < 0 else f"~{part.estimated_rows:,} rows"
            self.stdout.write(f"{part.name}  {rows}")
        for detached in AuditDetachment.objects.order_by("month"):
            self.stdout.write(
                f"{detached.partition}  detached {detached.created_at:%Y-%m-%d}, "
                f"{detached.rows:,} rows in {detached.file_name} (sha256 {detached.file_sha256})"
            )

    def _report_default(self) -> None:
        rows = partitions.default_rows()
        if rows:
            self.stderr.write(
                f"WARNING {rows:,} row(s) in {partitions.DEFAULT}: their month had no partition "
                "when they were written (run --ensure ahead of time)."
            )
        else:
            self.stdout.write(f"{partitions.DEFAULT}: empty.")

    def _verify_file(self, manifest: Path) -> None:
        self.stdout.write(f"Verifying the exported partition of {manifest}...")
        checked, problems = cold_storage.verify_export(manifest)
        self.stdout.write(f"Checked {checked:,} rows.")
        if problems:
            for problem in problems:
                self.stderr.write(f"MISMATCH {problem}")
            raise CommandError(f"exported partition verification failed: {problems[0]}")
        self.stdout.write(
            self.style.SUCCESS("OK: the file matches its manifest; every row its hash and links.")
        )
