"""Ninety days of trading on the sandbox gateway: six merchants in three currencies, with the
daily rhythm of real shops (quiet nights, busy lunchtimes and evenings, weekends that differ
by trade), declines, refunds above and below the approval threshold, disputes in every state
and one merchant above the chargeback-ratio threshold this month.

Every row is written by the real services at the moment it happens (the clock is moved), and
the sandbox holds the gateway's side of each payment, refund and dispute, so the demo's old
payments can be refunded and its open disputes answered through the sandbox like new ones.
Random but reproducible: one seeded generator."""

from __future__ import annotations

import datetime
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from payments.core.approvals import approval_approve
from payments.gateways import sandbox
from payments.models import Merchant, Payment
from payments.services.disputes import chargeback_record, chargeback_set_status
from payments.services.merchants import merchant_set_status
from payments.services.payments import payment_record, payment_set_status
from payments.services.refunds import refund_create, refund_request, refund_set_status

from .onboarding import CaseDriver, DemoMerchant, at, create_merchant


@dataclass(frozen=True)
class Trader:
    merchant: DemoMerchant
    per_day: float  # payments on an ordinary weekday
    weekend: float  # Saturday and Sunday, as a share of a weekday
    ticket: int  # a typical amount, minor units
    refund_rate: float = 0.05  # share of captured payments refunded later


TRADERS = [
    Trader(DemoMerchant("Acme Widgets Ltd", "Acme", "GB", "low", "GBP"), 1.2, 0.4, 4_500),
    Trader(DemoMerchant("Boulangerie Dupont SARL", "Dupont", "FR", "low"), 1.1, 1.4, 1_800),
    Trader(
        DemoMerchant("Nordlicht Reisen GmbH", "Nordlicht", "DE", "medium"), 0.6, 1.0, 38_000, 0.15
    ),
    Trader(DemoMerchant("Costa Azul Imports SL", "Costa Azul", "ES", "high"), 0.8, 0.8, 9_000),
    Trader(DemoMerchant("Hudson Outfitters Inc", "Hudson", "US", "low", "USD"), 1.2, 1.3, 6_500),
    Trader(DemoMerchant("Liffey Ticketing Ltd", "Liffey", "IE", "high"), 0.7, 1.5, 12_000),
]
SUSPENDED = ("Liffey", 12)  # suspended this many days ago, after its chargebacks
# Hours of the day, weighted: quiet at night, peaks at lunch and in the evening.
HOURS = [1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 10, 12, 11, 9, 8, 8, 9, 11, 12, 11, 8, 5, 2]
DECLINE_RATE, CANCEL_RATE = 0.07, 0.02
CARDS = [("visa", "4242"), ("mastercard", "4444"), ("visa", "1881"), ("amex", "8431")]
# (merchant, days ago, status, reason): every dispute state; this month's are Costa Azul's.
DISPUTES = [
    ("Costa Azul", 2, "needs_response", "fraudulent"),
    ("Costa Azul", 6, "needs_response", "product_not_received"),
    ("Costa Azul", 15, "under_review", "fraudulent"),
    ("Liffey", 35, "lost", "product_not_received"),
    ("Liffey", 42, "expired", "fraudulent"),
    ("Nordlicht", 50, "accepted", "duplicate"),
    ("Hudson", 60, "lost", "fraudulent"),
    ("Acme", 75, "won", "product_unacceptable"),
]
EVIDENCE_DAYS = {2: 5, 6: 1}  # open disputes: days left to answer, one of them due tomorrow


def _poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


class History:
    def __init__(self, users: dict[str, Any], *, now: datetime.datetime, days: int) -> None:
        self.users, self.now, self.days = users, now, days
        self.rng = random.Random(20261126)  # noqa: S311  # nosec B311 (demo data)
        self.merchants: dict[str, Merchant] = {}
        self.captured: dict[str, list[int]] = {t.merchant.trading_name: [] for t in TRADERS}
        self.refunds_due: list[tuple[datetime.datetime, int, int]] = []  # (when, payment, amount)
        self.approvals_due: list[tuple[datetime.datetime, Payment, int]] = []
        self.payments = 0

    def onboard(self) -> dict[str, Merchant]:
        driver = CaseDriver(self.users)
        with at(self.now - datetime.timedelta(days=self.days + 2)):
            for trader in TRADERS:
                spec = trader.merchant
                merchant = create_merchant(spec, actor=self.users["officer"])
                self.merchants[spec.trading_name] = driver.onboarded(merchant)
        return self.merchants

    def trade(self, progress: Callable[[str], Any]) -> None:
        first = (self.now - datetime.timedelta(days=self.days)).date()
        for offset in range(self.days + 1):
            day = first + datetime.timedelta(days=offset)
            moments = sorted(
                (self._moment(day), trader)
                for trader in TRADERS
                for _ in range(_poisson(self.rng, self._rate(trader, day)))
            )
            # A day per transaction; a refund that needs a second person's approval runs after
            # it, as it would: its money moves through the sandbox and comes back by webhook.
            with transaction.atomic():
                for moment, trader in moments:
                    if moment < self.now - datetime.timedelta(hours=1):
                        self._refunds_until(moment)
                        self._payment(trader, moment)
            self._refunds_with_approval()
            if offset % 15 == 0 or offset == self.days:
                progress(f"  day {offset:>2} of {self.days}: {self.payments} payments")
            if (self.now.date() - day).days == SUSPENDED[1]:
                with at(datetime.datetime.combine(day, datetime.time(18), tzinfo=datetime.UTC)):
                    merchant_set_status(
                        merchant=self.merchants[SUSPENDED[0]],
                        status=Merchant.Status.SUSPENDED,
                        reason="Chargeback ratio far above the threshold; under investigation.",
                        actor=self.users["officer"],
                    )
        with transaction.atomic():
            self._refunds_until(self.now - datetime.timedelta(hours=1))
        self._refunds_with_approval()
        # Whatever the dates make of the random history, one refund above the threshold went
        # through maker-checker last week.
        last_week = self.now - datetime.timedelta(days=6)
        large = self._captured_payment("Nordlicht", 96_000, last_week, "Company retreat")
        self.approvals_due.append((last_week + datetime.timedelta(days=1), large, 96_000))
        self._refunds_with_approval()

    def _rate(self, trader: Trader, day: datetime.date) -> float:
        name, suspended_days_ago = SUSPENDED
        if (
            trader.merchant.trading_name == name
            and (self.now.date() - day).days <= suspended_days_ago
        ):
            return 0.0
        growth = 1.2 - 0.4 * (self.now.date() - day).days / self.days  # a growing business
        return trader.per_day * (trader.weekend if day.weekday() >= 5 else 1.0) * growth

    def _moment(self, day: datetime.date) -> datetime.datetime:
        hour = self.rng.choices(range(24), weights=HOURS)[0]
        return datetime.datetime.combine(
            day, datetime.time(hour, self.rng.randrange(60), self.rng.randrange(60))
        ).replace(tzinfo=datetime.UTC)

    def _payment(self, trader: Trader, moment: datetime.datetime) -> None:
        name, currency = trader.merchant.trading_name, trader.merchant.currency
        amount = max(100, round(trader.ticket * self.rng.lognormvariate(0, 0.5) / 50) * 50)
        roll = self.rng.random()
        status = "failed" if roll < DECLINE_RATE else "captured"
        if DECLINE_RATE <= roll < DECLINE_RATE + CANCEL_RATE:
            status = "canceled"
        elif status == "captured" and self.now - moment < datetime.timedelta(days=2):
            status = self.rng.choice(["captured", "captured", "authorized"])
        brand, last4 = self.rng.choice(CARDS)
        with at(moment):
            reference = sandbox.on_file_payment(
                amount=amount, currency=currency, status=status, brand=brand, last4=last4
            )
            payment = payment_record(
                merchant=self.merchants[name],
                gateway=sandbox.NAME,
                amount=amount,
                currency=currency,
                gateway_reference=reference,
                card_brand=brand,
                card_last4=last4,
                customer_email=f"customer{self.rng.randrange(5000)}@example.com",
            )
            payment_set_status(payment=payment, status=status)
        self.payments += 1
        if status == "captured":
            self.captured[name].append(payment.pk)
            if self.rng.random() < trader.refund_rate:
                later = moment + datetime.timedelta(hours=self.rng.randrange(20, 24 * 8))
                share = 1.0 if self.rng.random() < 0.6 else 1 / 3
                heapq.heappush(self.refunds_due, (later, payment.pk, int(amount * share)))

    def _refunds_until(self, moment: datetime.datetime) -> None:
        while self.refunds_due and self.refunds_due[0][0] <= moment:
            when, payment_id, amount = heapq.heappop(self.refunds_due)
            payment = Payment.objects.get(pk=payment_id)
            if payment.status != "captured" or payment.chargebacks.exists():
                continue
            if amount > settings.REFUND_APPROVAL_THRESHOLD:
                self.approvals_due.append((when, payment, amount))
                continue
            with at(when):
                self._refund(payment, amount, actor=self.rng.choice(["ops", "ops2"]))

    def _refund(self, payment: Payment, amount: int, *, actor: str) -> None:
        """A refund paid out earlier: asked for, sent to the sandbox, succeeded."""
        refund = refund_create(
            payment=payment,
            amount=amount,
            reason=self.rng.choice(["requested_by_customer"] * 4 + ["duplicate"]),
            actor=self.users[actor],
        )
        reference = sandbox.on_file_refund(
            payment_reference=payment.gateway_reference,
            amount=amount,
            currency=payment.currency,
            refund_id=refund.pk,
        )
        refund_set_status(refund=refund, status="succeeded", gateway_reference=reference)

    def _refunds_with_approval(self) -> None:
        """Above the threshold: one operations user asks, the other approves two hours later;
        the sandbox pays it out and its webhook settles it, all at those past moments."""
        for when, payment, amount in self.approvals_due:
            maker, checker = self.rng.sample(["ops", "ops2"], 2)
            with at(when):
                requested = refund_request(
                    payment=payment,
                    amount=amount,
                    reason="requested_by_customer",
                    reason_detail="Trip cancelled by the customer",
                    actor=self.users[maker],
                )
            if requested.approval is None:
                raise ValueError(f"a refund of {amount} should need an approval")
            with at(when + datetime.timedelta(hours=2)):
                approval_approve(
                    request=requested.approval,
                    actor=self.users[checker],
                    note="Booking cancellation confirmed with the merchant.",
                )
        self.approvals_due.clear()

    def disputes(self) -> None:
        for name, full_days_ago, status, reason in DISPUTES:
            days_ago = min(full_days_ago, self.days - 6)  # a shorter history keeps every state
            opened = (self.now - datetime.timedelta(days=days_ago)).replace(
                hour=9, minute=30, second=0, microsecond=0
            )
            payment = self._disputable(name, opened=opened)
            due = opened + datetime.timedelta(days=EVIDENCE_DAYS.get(full_days_ago, 7))
            with at(opened):
                reference = sandbox.on_file_dispute(
                    payment_reference=payment.gateway_reference,
                    amount=payment.amount,
                    currency=payment.currency,
                    status="lost" if status == "expired" else status,
                    due=due,
                )
                chargeback = chargeback_record(
                    payment=payment,
                    gateway_reference=reference,
                    reason=reason,
                    amount=payment.amount,
                    evidence_due_by=due,
                )
            steps = {
                "under_review": [(2, "under_review")],
                "won": [(3, "under_review"), (30, "won")],
                "lost": [(3, "under_review"), (25, "lost")],
                "accepted": [(1, "accepted")],
                "expired": [(8, "expired")],
            }.get(status, [])
            for after, step in steps:
                with at(opened + datetime.timedelta(days=after)):
                    chargeback = chargeback_set_status(chargeback=chargeback, status=step)

    def _disputable(self, name: str, *, opened: datetime.datetime) -> Payment:
        """The merchant's newest captured payment from at least five days before the dispute
        (any earlier one on a short history)."""
        candidates = (
            Payment.objects.filter(pk__in=self.captured[name], status="captured")
            .exclude(chargebacks__isnull=False)
            .order_by("-created_at")
        )
        payment = (
            candidates.filter(created_at__lt=opened - datetime.timedelta(days=5)).first()
            or candidates.filter(created_at__lt=opened).first()
        )
        if payment is None:
            raise ValueError(f"no captured payment of {name} before {opened} to dispute")
        return payment

    def _captured_payment(
        self, name: str, amount: int, when: datetime.datetime, description: str
    ) -> Payment:
        trader = next(t for t in TRADERS if t.merchant.trading_name == name)
        with at(when):
            reference = sandbox.on_file_payment(
                amount=amount,
                currency=trader.merchant.currency,
                status="captured",
                brand="visa",
                last4="4242",
            )
            payment = payment_record(
                merchant=self.merchants[name],
                gateway=sandbox.NAME,
                amount=amount,
                currency=trader.merchant.currency,
                gateway_reference=reference,
                card_brand="visa",
                card_last4="4242",
                customer_email=f"events@{name.lower()}-customer.example",
                description=description,
            )
            return payment_set_status(payment=payment, status="captured")

    def waiting_for_approval(self) -> list[Payment]:
        """Large payments taken this morning, two with a refund waiting for a second person:
        one asked by each operations user, so either can approve the other's."""
        morning = self.now - datetime.timedelta(hours=3)
        threshold = settings.REFUND_APPROVAL_THRESHOLD
        shown = []
        for name, amount, asked_by in [
            ("Nordlicht", 148_000, "ops"),
            ("Hudson", 125_000, "ops2"),
            ("Acme", 64_000, None),  # no refund yet: for trying maker-checker yourself
        ]:
            payment = self._captured_payment(name, amount, morning, "Group booking")
            if asked_by is not None:
                if amount <= threshold:
                    raise ValueError(f"{amount} is within the approval threshold {threshold}")
                with at(morning + datetime.timedelta(minutes=40)):
                    refund_request(
                        payment=payment,
                        amount=amount,
                        reason="requested_by_customer",
                        reason_detail="Event cancelled by the organiser",
                        actor=self.users[asked_by],
                    )
            shown.append(payment)
        return shown
