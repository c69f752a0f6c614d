"""Enable or disable payouts for merchants. Enabling needs the merchant's payout account verified
by micro-deposits; a merchant without one is refused and left as it was."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from audits.commands import AuditedCommand
from payments.core.errors import DomainError
from payments.models import Merchant
from payments.services.payout_accounts import merchant_payouts_set


class Command(AuditedCommand):
    help = __doc__

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--merchant", type=int, action="append", required=True, help="id; repeat for several"
        )
        state = parser.add_mutually_exclusive_group(required=True)
        state.add_argument("--enable", action="store_true")
        state.add_argument("--disable", action="store_true")
        parser.add_argument("--actor", help="username the audit trail names (default: system)")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = None
        if options["actor"]:
            actor = get_user_model().objects.filter(username=options["actor"]).first()
            if actor is None or not actor.is_active:
                raise CommandError(f"No active user {options['actor']!r}.")
        enabled = bool(options["enable"])
        ids: list[int] = options["merchant"]
        self.stdout.write(
            f"{'Enabling' if enabled else 'Disabling'} payouts for {len(ids)} merchant(s)..."
        )
        refused = 0
        for done, pk in enumerate(ids, start=1):
            merchant = Merchant.objects.filter(pk=pk).first()
            if merchant is None:
                self.stdout.write(f"  [{done}/{len(ids)}] merchant {pk}: no such merchant")
                refused += 1
                continue
            try:
                merchant_payouts_set(merchant=merchant, enabled=enabled, actor=actor)
            except DomainError as exc:
                self.stdout.write(f"  [{done}/{len(ids)}] merchant {pk}: refused: {exc}")
                refused += 1
            else:
                self.stdout.write(
                    f"  [{done}/{len(ids)}] merchant {pk} ({merchant}): payouts "
                    f"{'enabled' if enabled else 'disabled'}"
                )
        if refused:
            raise CommandError(
                f"{refused} of {len(ids)} merchant(s) refused; nothing changed for them."
            )
        self.stdout.write(f"Done: {len(ids)} merchant(s).")
