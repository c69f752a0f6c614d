from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from audits.commands import AuditedCommand
from kyc.privacy import ErasureRefused, SubjectNotFound, subject_erase
from payments.core.errors import DomainError


class Command(AuditedCommand):
    help = (
        "A data-subject erasure request (GDPR art. 17): destroy the data key of the merchant "
        "contact person with this email, so every copy of their data (audit trails included) "
        "becomes unreadable. Refused, with the reasons, while a legal hold applies. Recorded in "
        "the security trail."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--email", required=True, help="the contact person's email")
        parser.add_argument(
            "--reason", required=True, help="the request's reference, kept with the erasure"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stderr.write("Looking for the person's keys and checking legal holds...")
        try:
            erasure = subject_erase(email=options["email"], actor=None, reason=options["reason"])
        except ErasureRefused as exc:
            raise CommandError(
                "\n  - ".join(["Erasure refused, nothing changed:", *exc.holds])
            ) from exc
        except (SubjectNotFound, DomainError) as exc:
            raise CommandError(str(exc)) from exc
        names = ", ".join(str(m) for m in erasure.merchants) or "no current merchant"
        self.stdout.write(
            f"Erased: {erasure.keys_destroyed} key(s) destroyed; contact data of {names} now "
            "reads as (erased) everywhere, audit rows included."
        )
