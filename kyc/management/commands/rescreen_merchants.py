from __future__ import annotations

import time
from typing import Any

from audits.commands import AuditedCommand
from kyc.services import RescreenTally, merchants_rescreen


class Command(AuditedCommand):
    help = (
        "Ongoing monitoring: re-screen every active merchant (legal and trading names, contact "
        "name) against the current screening list. A new hit goes to review on the merchant's "
        "open KYC case, or on a new case in the queue; a hit already recorded opens nothing. "
        "The nightly beat task kyc.tasks.merchants_rescreen does the same."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        self.stderr.write("Re-screening active merchants...")

        def progress(tally: RescreenTally, total: int) -> None:
            self.stderr.write(
                f"  {tally.merchants:,}/{total:,} merchants, {tally.new_hits} new hits "
                f"({time.monotonic() - started:.1f} s)"
            )

        tally = merchants_rescreen(batch_size=max(1, options["batch_size"]), progress=progress)
        self.stdout.write(
            f"Re-screened {tally.merchants:,} merchants ({tally.names:,} names) in "
            f"{time.monotonic() - started:.1f} s: {tally.hits} hits, {tally.new_hits} new; "
            f"{tally.cases_opened} cases opened for review, {tally.cases_reopened} open cases "
            f"given new hits."
        )
