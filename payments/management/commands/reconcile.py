"""Compare a gateway's payments, refunds and disputes with ours since a date: settle payments left
without a gateway reference, apply the states webhooks missed (audited as reconciliation), record
refunds made at the gateway, and print what differs."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import CommandError

from audits.commands import AuditedCommand, write_labelled
from payments.gateways import GatewayNotConfigured

from ...services.reconcile import reconcile


def _date(value: str) -> datetime.datetime:
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--since takes a date like 2026-11-01, not {value!r}") from exc
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


class Command(AuditedCommand):
    help = __doc__

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--gateway", required=True, choices=["stripe", "braintree"])
        parser.add_argument("--since", required=True, type=_date, metavar="YYYY-MM-DD")

    def handle(self, *args: Any, gateway: str, since: datetime.datetime, **options: Any) -> None:
        self.stdout.write(f"Reconciling {gateway} since {since:%Y-%m-%d}...")
        try:
            report = reconcile(
                gateway=gateway,
                since=since,
                progress=lambda label, done, total: self.stdout.write(
                    f"  {label}: {done:,} of {total:,} checked"
                ),
            )
        except GatewayNotConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Checked {report.checked:,} records: {len(report.fixed)} fixed, "
            f"{len(report.differences)} other differences, "
            f"{len(report.errors)} errors (run {report.run_id})."
        )
        write_labelled(self.stdout, "  FIXED", report.fixed)
        write_labelled(self.stdout, "  DIFFERS", report.differences)
        write_labelled(self.stderr, "  ERROR", report.errors)
