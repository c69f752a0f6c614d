"""Load demo data (idempotent): staff, merchants, KYC cases in every state and DAYS days of
payments on the sandbox gateway; print the demo staff users and their passwords."""

from __future__ import annotations

import datetime
import time
from typing import Any

from django.core.management.base import CommandError
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from audits.commands import AuditedCommand
from kyc.demo import staff
from kyc.demo.fraud import load_fraud_rules
from kyc.demo.history import TRADERS, History
from kyc.demo.onboarding import load_onboarding_cases, load_periodic_reviews
from kyc.demo.payouts import load_payout_accounts
from kyc.models import KycCase
from payments.models import Chargeback, Merchant, Payment, Refund, WebhookEvent

# Demo data for trying the back-office (kyc/demo/): two staff users per role, merchants and KYC
# cases in every state, and 90 days of payments, refunds and disputes on the sandbox gateway.
# Safe to run again: it adds nothing twice. It lives in kyc, the one app that may see both apps
# (kyc uses payments, never the reverse).

# Kept for callers (tests) that point the credentials elsewhere.
CREDENTIALS_FILE = staff.CREDENTIALS_FILE
LAST_STEP_EVENT = "evt_demo_0000"


class Command(AuditedCommand):
    help = __doc__

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--days", type=int, default=90, help="days of history (default 90, at least 30)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        self.stdout.write(f"Staff users ({len(staff.STAFF)}, two per role)...")
        users = staff.staff_users(credentials_file=CREDENTIALS_FILE)
        if WebhookEvent.objects.filter(event_id=LAST_STEP_EVENT).exists():
            self.stdout.write("Demo data already loaded; nothing added.")
        elif Merchant.objects.filter(legal_name=TRADERS[0].merchant.legal_name).exists():
            raise CommandError(
                "A previous load of the demo data stopped part-way. Start again from an empty "
                "database: `make clean run` (SQLite), or drop and re-create DATABASE_URL's."
            )
        else:
            self._load(users, days=max(options["days"], 30))
            self.stdout.write(
                self.style.SUCCESS(
                    f"Loaded {Merchant.objects.count()} merchants, "
                    f"{KycCase.objects.count()} KYC cases, {Payment.objects.count()} payments, "
                    f"{Refund.objects.count()} refunds, {Chargeback.objects.count()} disputes "
                    f"in {time.monotonic() - started:.1f} s."
                )
            )
        staff.print_credentials(self.stdout.write, credentials_file=CREDENTIALS_FILE)

    def _load(self, users: dict[str, Any], *, days: int) -> None:
        now = timezone.now()
        history = History(users, now=now, days=days)
        # The sandbox's webhooks go straight to the inbox in-process while loading: no server
        # runs yet, and each one is processed at the moment of the history it belongs to.
        with override_settings(SANDBOX_WEBHOOK_URL="", SANDBOX_WEBHOOK_DELAY_SECONDS=0):
            self._load_history(history, users, days=days, now=now)
        self._webhook_events(now)

    def _load_history(
        self, history: History, users: dict[str, Any], *, days: int, now: Any
    ) -> None:
        self.stdout.write(f"Merchants ({len(TRADERS)} trading), onboarded by the officers...")
        traders = history.onboard()
        self.stdout.write(f"{days} days of payments and refunds on the sandbox gateway...")
        history.trade(self.stdout.write)
        self.stdout.write("Disputes (every state)...")
        history.disputes()
        self.stdout.write("Refunds waiting for a second person's approval...")
        history.waiting_for_approval()
        self.stdout.write("Payout accounts verified by micro-deposits on the sandbox rail...")
        load_payout_accounts(
            traders,
            users,
            now=now,
            onboarded=now - datetime.timedelta(days=days + 2),
            progress=self.stdout.write,
        )
        self.stdout.write("Merchants onboarding and KYC cases in every state...")
        load_onboarding_cases(users, now=now)
        load_periodic_reviews(users, traders, now=now)
        self.stdout.write("Starter fraud rules, written by a compliance officer...")
        load_fraud_rules(users)

    @transaction.atomic
    def _webhook_events(self, now: Any) -> None:
        """A few gateway events in each state for the inbox screen; the sandbox sends real
        ones as you use the demo."""
        # Written last: their presence says the load completed.
        for n, (event_type, status) in enumerate(
            [
                ("payment_intent.succeeded", "processed"),
                ("charge.dispute.created", "processed"),
                ("customer.created", "ignored"),
                ("charge.refunded", "failed"),
            ]
        ):
            WebhookEvent.objects.create(
                provider="stripe",
                event_id=f"evt_demo_{n:04d}",
                event_type=event_type,
                payload={"id": f"evt_demo_{n:04d}", "type": event_type},
                status=status,
                attempts=1 if status != "failed" else 3,
                processed_at=now,
                last_error="payment not found" if status == "failed" else "",
            )
