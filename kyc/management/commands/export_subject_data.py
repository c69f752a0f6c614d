"""A data-subject access request (GDPR art. 15): print as JSON everything held about the merchant
contact person with this email (found through the blind index). Each export is recorded in the
security trail."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError

from audits.commands import AuditedCommand
from kyc.privacy import SubjectNotFound, subject_data_export


class Command(AuditedCommand):
    help = __doc__

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--email", required=True, help="the contact person's email")
        parser.add_argument("--output", help="write to this file instead of printing")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stderr.write(
            "Gathering merchants, beneficial owners, KYC cases, screening and both audit trails..."
        )
        try:
            document = subject_data_export(email=options["email"], actor=None)
        except SubjectNotFound as exc:
            raise CommandError(str(exc)) from exc
        text = json.dumps(document, indent=2)
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as handle:
                handle.write(text)
            self.stderr.write(
                f"Written to {options['output']} ({len(document['merchants'])} merchants)."
            )
        else:
            self.stdout.write(text)
