from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audits.chain import parse_head
from audits.models import ChainVerification
from audits.verify import check_expected_heads, verification_record, verify_database


class Command(BaseCommand):
    help = (
        "Check the payment_audits hash chains: every row's hash and link to the previous one. "
        "Prints the chain heads (CHAIN:SEQ:HASH); keep them outside the database and pass them "
        "back with --expect to detect rows cut from the end. Exits non-zero on any mismatch."
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

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("file"):
            self._verify_file(options["file"])
            return
        try:
            expected = [parse_head(value) for value in options["expect"]]
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"  checked {done:,} of {total:,} rows")

        self.stdout.write("Verifying payment_audits hash chains...")
        report = verify_database(progress)
        check_expected_heads(report, expected)
        verification_record(report, source=ChainVerification.Source.COMMAND)
        self.stdout.write(f"Checked {report.rows_checked:,} rows in {len(report.heads)} chains.")
        self.stdout.write("Chain heads (keep these outside the database):")
        for chain, (seq, digest) in sorted(report.heads.items()):
            self.stdout.write(f"  {chain}:{seq}:{digest}")
        if not report.ok:
            for problem in report.problems:
                self.stderr.write(f"MISMATCH {problem}")
            raise CommandError(f"audit chain verification failed: {report.problems[0]}")
        self.stdout.write(self.style.SUCCESS("OK: every chain verifies."))

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
