"""Payout accounts in every verification state, each through the product's own services and
the sandbox rail's webhooks at the moment it happened: most merchants verified (some with
payouts on), one whose deposit the bank returned, one still to confirm after a wrong try."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from payments.core.records import attributes
from payments.exceptions import PayoutAmountsWrong
from payments.models import Merchant, PayoutAccount
from payments.services.payout_accounts import (
    merchant_payouts_set,
    payout_account_add,
    payout_account_confirm,
)

from .onboarding import at


@dataclass(frozen=True)
class DemoPayoutAccount:
    merchant: str  # trading name
    holder_name: str
    country: str
    currency: str
    account_number: str
    routing_code: str = ""
    outcome: str = "verified"  # verified, payouts (verified and enabled), returned, waiting
    days_ago: int = 0  # 0: the day after the merchant was onboarded


# What the merchant's integration sends to add the account (payout_account_add's keywords).
ACCOUNT_FIELDS = ("holder_name", "country", "currency", "account_number", "routing_code")


ACCOUNTS = [
    DemoPayoutAccount(
        "Acme", "Acme Widgets Payouts", "GB", "GBP", "31926819", "601613", outcome="payouts"
    ),
    DemoPayoutAccount(
        "Dupont", "Dupont Boulangerie Tresorerie", "FR", "EUR", "FR1420041010050500013M02606",
        outcome="payouts",
    ),
    DemoPayoutAccount(
        "Nordlicht", "Nordlicht Reisen Treuhand", "DE", "EUR", "DE89370400440532013000"
    ),
    # The sandbox rail's bank returns credits to accounts ending 3202 (account_closed).
    DemoPayoutAccount(
        "Costa Azul", "Costa Azul Tesoreria", "ES", "EUR", "ES4121000418450200053202",
        outcome="returned", days_ago=20,
    ),
    DemoPayoutAccount(
        "Hudson", "Hudson Outfitters Operating", "US", "USD", "000123456789", "110000000",
        outcome="payouts",
    ),
    DemoPayoutAccount(
        "Liffey", "Liffey Ticketing Client Funds", "IE", "EUR", "IE29AIBK93115212345678",
        outcome="waiting", days_ago=3,
    ),
]  # fmt: skip


def load_payout_accounts(
    merchants: dict[str, Merchant],
    users: dict[str, Any],
    *,
    now: datetime.datetime,
    onboarded: datetime.datetime,
    progress: Callable[[str], Any],
) -> None:
    for done, spec in enumerate(ACCOUNTS, start=1):
        merchant = merchants[spec.merchant]
        added = (
            now - datetime.timedelta(days=spec.days_ago)
            if spec.days_ago
            else onboarded + datetime.timedelta(days=1)
        )
        # The merchant's integration adds it (no person: the system user, source "command").
        with at(added):
            account = payout_account_add(merchant=merchant, **attributes(spec, ACCOUNT_FIELDS))
        account = PayoutAccount.objects.get(pk=account.pk)
        sent = sorted(int(d.amount) for d in account.deposits.all())
        if spec.outcome == "waiting":
            # A typo, as merchants make: one attempt counted.
            with at(added + datetime.timedelta(days=1)), contextlib.suppress(PayoutAmountsWrong):
                payout_account_confirm(account=account, amounts=[a % 99 + 1 for a in sent])
        elif spec.outcome in ("verified", "payouts"):
            with at(added + datetime.timedelta(days=2)):
                payout_account_confirm(account=account, amounts=sent)
            if spec.outcome == "payouts":
                with at(added + datetime.timedelta(days=2, hours=3)):
                    merchant_payouts_set(merchant=merchant, enabled=True, actor=users["officer"])
        account.refresh_from_db()
        progress(
            f"  [{done}/{len(ACCOUNTS)}] {spec.merchant}: {account} "
            f"{account.get_status_display().lower()}"
        )
