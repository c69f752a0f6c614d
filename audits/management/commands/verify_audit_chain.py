from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audits import checkpoints
from audits.boundary import read_manifest
from audits.chain import parse_head
from audits.crypto.signing import SignatureRefused
from audits.models import ChainVerification
from audits.verify import ChainReport, check_expected_heads, verification_record


class Command(BaseCommand):
    help = (
        "Check the payment_audits hash chains: every row's hash and link to the previous one. "
        "By default from the newest signed checkpoint whose signature holds (incremental); "
        "--full from genesis; --checkpoint FILE from an exported checkpoint file. Prints the "
        "chain heads (CHAIN:SEQ:HASH); keep them outside the database and pass them back with "
        "--expect to detect rows cut from the end. Exits non-zero on any mismatch."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--expect",
            action="append",
            default=[],
            metavar="CHAIN:SEQ:HASH",
            help="a chain head kept from an earlier run (repeatable)",
        )
        parser.add_argument(
            "--file", help="check an exported evidence file offline instead of the database"
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="verify every row from genesis, not from the last checkpoint",
        )
        parser.add_argument(
            "--checkpoint",
            metavar="FILE",
            help="verify from this exported checkpoint file (its signature is checked first)",
        )
        parser.add_argument(
            "--from-manifest",
            metavar="FILE",
            help="start no lower than the boundary of this exported partition's manifest "
            "(audit_partitions --detach) instead of the one recorded in the database",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="processes verifying chains in parallel (default: one per core on PostgreSQL)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("file"):
            self._verify_file(options["file"])
            return
        try:
            expected = [parse_head(value) for value in options["expect"]]
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        workers = options.get("workers")
        if workers is not None and workers < 1:
            raise CommandError("--workers must be 1 or more.")
        if options.get("full") and options.get("checkpoint"):
            raise CommandError("--full and --checkpoint exclude each other.")

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"  checked {done:,} of {total:,} rows")

        manifest = Path(options["from_manifest"]) if options.get("from_manifest") else None
        if manifest is not None:
            try:
                read_manifest(manifest)
            except (OSError, ValueError) as exc:
                raise CommandError(f"cannot read {manifest}: {exc}") from exc
        started = time.perf_counter()
        refused: list[str] = []
        signed: checkpoints.SignedHeads | None
        if options.get("checkpoint"):
            signed = self._signed_file(options["checkpoint"])
            self.stdout.write(f"Verifying payment_audits hash chains from {signed.label}...")
            report = checkpoints.verify_from(signed, progress, workers, manifest=manifest)
        elif options.get("full"):
            self.stdout.write("Verifying payment_audits hash chains from genesis...")
            report = checkpoints.verify_from(None, progress, workers, manifest=manifest)
        else:
            signed, refused = checkpoints.checkpoint_latest_good()
            for message in refused:
                self.stderr.write(f"REFUSED {message}")
            where = signed.label if signed else "genesis (no signed checkpoint yet)"
            self.stdout.write(f"Verifying payment_audits hash chains from {where}...")
            report = checkpoints.verify_from(signed, progress, workers, manifest=manifest)
        check_expected_heads(report, expected)
        verification_record(report, source=ChainVerification.Source.COMMAND, refused=refused)
        self._print(report, time.perf_counter() - started)
        if refused:
            raise CommandError(f"audit chain verification failed: {refused[0]}")
        if not report.ok:
            for problem in report.problems:
                self.stderr.write(f"MISMATCH {problem}")
            raise CommandError(f"audit chain verification failed: {report.problems[0]}")
        self.stdout.write(self.style.SUCCESS("OK: every chain verifies."))

    def _signed_file(self, path: str) -> checkpoints.SignedHeads:
        try:
            signed = checkpoints.read_file(path)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        try:
            checkpoints.check_signature(signed)
        except SignatureRefused as exc:
            raise CommandError(f"{signed.label} refused: {exc}") from exc
        self.stdout.write(f"The signature of {signed.label} holds (key {signed.key_id}).")
        return signed

    def _print(self, report: ChainReport, seconds: float) -> None:
        rate = report.rows_checked / seconds if seconds > 0 else 0.0
        if "detach boundary" in report.started_from:
            self.stdout.write(
                f"Started from {report.started_from}: older rows are in cold storage."
            )
        self.stdout.write(
            f"Checked {report.rows_checked:,} rows in {len(report.heads)} chains "
            f"in {seconds:.2f}s ({rate:,.0f} rows/s)."
        )
        self.stdout.write("Chain heads (keep these outside the database):")
        for chain, (seq, digest) in sorted(report.heads.items()):
            self.stdout.write(f"  {chain}:{seq}:{digest}")

    def _verify_file(self, path: str) -> None:
        import json

        from audits.evidence import verify_evidence

        self.stdout.write(f"Verifying evidence file {path}...")
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        checked, problems = verify_evidence(document)
        self.stdout.write(f"Checked {checked:,} rows.")
        if problems:
            for problem in problems:
                self.stderr.write(f"MISMATCH {problem}")
            raise CommandError(f"evidence file verification failed: {problems[0]}")
        self.stdout.write(self.style.SUCCESS("OK: every row matches its hash and its links."))
