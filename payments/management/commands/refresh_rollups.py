"""Rebuild the overview's daily payment roll-ups for today and the N-1 days before it (UTC days,
oldest first). Beat does today and yesterday every few minutes; run this after loading data or to
backfill."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...core.errors import DomainError
from ...services.rollups import RollupRefreshed, rollups_refresh_recent


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=int, default=2, metavar="N")

    def handle(self, *args: Any, days: int, **options: Any) -> None:
        started = time.perf_counter()
        if options["verbosity"] >= 1:
            self.stdout.write(f"Refreshing payment roll-ups for {days} day(s)...")

        def progress(result: RollupRefreshed) -> None:
            if options["verbosity"] < 1:
                return
            self.stdout.write(
                f"  {result.day:%Y-%m-%d}: {result.payments:,} payments, "
                f"{result.refunds:,} refunds -> {result.rows:,} rows"
            )

        try:
            done = rollups_refresh_recent(days=days, progress=progress)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Refreshed {len(done)} day(s), {sum(r.rows for r in done):,} rows "
            f"in {time.perf_counter() - started:.1f} s."
        )
