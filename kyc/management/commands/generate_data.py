"""Generate merchants, payments, KYC cases and payment audit rows at a chosen size, in batches,
with a progress bar. The audit rows are chained like the application's own: verify_audit_chain
verifies them. For benches, on a database you can throw away."""

from __future__ import annotations

import random
import sys
import time
from typing import Any, TypedDict

from django.core.management.base import CommandError

from audits.commands import AuditedCommand
from kyc.demo import volume

# Data at volume for `make bench` (kyc/demo/volume.py). In kyc: it writes both apps' rows.


class _Batched(TypedDict):
    """What every table written in batches is generated with."""

    batch_size: int
    rng: random.Random
    progress: volume.Progress


class Command(AuditedCommand):
    help = __doc__

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--merchants", type=int, default=1_000)
        parser.add_argument("--payments", type=int, default=1_000_000)
        parser.add_argument("--kyc-cases", type=int, default=100_000)
        parser.add_argument("--audit-rows", type=int, default=10_000_000)
        parser.add_argument("--batch-size", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=14, help="the same data for a seed")

    def _progress(self, what: str, done: int, total: int) -> None:
        elapsed = max(time.monotonic() - self._started[what], 1e-9)
        width = 30
        filled = width * done // max(total, 1)
        line = (
            f"  {what:<11} [{'#' * filled}{'.' * (width - filled)}] {done:>11,}/{total:,} "
            f"{done / elapsed:>9,.0f}/s"
        )
        interactive = getattr(sys.stderr, "isatty", lambda: False)()
        if interactive and done < total:
            self.stderr.write("\r" + line, ending="")
        elif done == total or not interactive:
            self.stderr.write(("\r" if interactive else "") + line)

    def handle(self, *args: Any, **options: Any) -> None:
        sizes = {k: options[k] for k in ("merchants", "payments", "kyc_cases", "audit_rows")}
        if any(v < 0 for v in sizes.values()) or options["batch_size"] < 1:
            raise CommandError("Sizes are 0 or more and the batch size at least 1.")
        if sizes["merchants"] < 1 and (sizes["payments"] or sizes["kyc_cases"]):
            raise CommandError("Payments and KYC cases need at least one merchant.")
        if sizes["audit_rows"] and not sizes["payments"]:
            raise CommandError("Audit rows are about payments: generate some (--payments).")
        rng = random.Random(options["seed"])  # noqa: S311  # nosec B311 (generated data, not secrets)
        self._started: dict[str, float] = {}
        began = time.monotonic()

        def stage(what: str) -> None:
            self._started[what] = time.monotonic()

        self.stderr.write(
            "Generating {merchants:,} merchants, {payments:,} payments, {kyc_cases:,} KYC cases "
            "and {audit_rows:,} audit rows...".format(**sizes)
        )
        stage("merchants")
        merchants = volume.merchants_generate(sizes["merchants"], rng=rng, progress=self._progress)
        batched = _Batched(batch_size=options["batch_size"], rng=rng, progress=self._progress)
        stage("payments")
        payments = volume.payments_generate(sizes["payments"], merchants=merchants, **batched)
        stage("KYC cases")
        volume.cases_generate(sizes["kyc_cases"], merchants=merchants, **batched)
        stage("audit rows")
        if sizes["audit_rows"]:
            volume.audit_rows_generate(sizes["audit_rows"], payments=payments, **batched)
        self.stdout.write(
            "Generated {merchants:,} merchants, {payments:,} payments, {kyc_cases:,} KYC cases "
            "and {audit_rows:,} audit rows".format(**sizes)
            + f" in {time.monotonic() - began:.1f} s. Check the chains: "
            "manage.py verify_audit_chain"
        )
