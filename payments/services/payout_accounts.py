"""Payout accounts proven by micro-deposits (issue 15, point 5; the Plaid and Stripe pattern).

The merchant gives a bank account; we send it two random amounts between 1 and 99 minor units
through the bank rail (payments/rails/); the rail reports each credit by webhook (sent,
settled, returned); the merchant confirms the two amounts within PAYOUT_VERIFICATION_DAYS and
PAYOUT_VERIFICATION_ATTEMPTS. A verified account is what `merchant_payouts_set` needs before
payouts can be enabled. Every change is a save of an audited row: both audit trails record
each step, with the account number and the amounts as envelopes only.
"""

from __future__ import annotations

import datetime
import logging
import secrets
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audits import context
from audits.crypto.envelope import blind_index_candidates

from ..core.bank_accounts import check_bank_account
from ..core.records import attributes, create_valid
from ..exceptions import (
    PaymentsError,
    PayoutAccountAlreadyVerified,
    PayoutAccountInUse,
    PayoutAccountNotAwaitingConfirmation,
    PayoutAmountsWrong,
    PayoutsNeedVerifiedAccount,
    PayoutVerificationExpired,
    PayoutVerificationLocked,
)
from ..models import PAYOUT_ACCOUNT_LIVE, Merchant, MicroDeposit, PayoutAccount
from ..rails import BankAccount, RailCreditReport, get_rail

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

DEPOSITS = 2
# What the merchant sees on the statement next to the two amounts.
STATEMENT_TEXT = "ACCTVERIFY"


class MicroDepositNotFound(PaymentsError):
    """A rail event about a credit we do not (yet) hold: the event is retried by the inbox."""

    http_status = 404


def _identity(account_number: str, routing_code: str) -> str:
    # As PayoutAccount.account_identity makes it, normalised like its BlindIndexField.
    field = PayoutAccount._meta.get_field("account_index")
    return field.normalise(f"{routing_code}/{account_number}")


def _draw_amounts() -> list[int]:
    """Two different amounts from 1 to 99 (different, so that swapping them is no hint)."""
    first = secrets.randbelow(99) + 1
    second = secrets.randbelow(98) + 1
    return [first, second + 1 if second >= first else second]


def payout_account_add(
    *,
    merchant: Merchant,
    holder_name: str,
    country: str,
    currency: str,
    account_number: str,
    routing_code: str = "",
    actor: User | None = None,
) -> PayoutAccount:
    """Register the merchant's payout account and send its two micro-deposits. The merchant's
    previous account, if any, is replaced (and payouts stop until the new one is verified).
    A bad account, or one registered to another merchant, is refused before anything is
    written; a rail that refuses the credit rolls everything back."""
    checked = check_bank_account(
        country=country, account_number=account_number, routing_code=routing_code
    )
    holder_name = (holder_name or "").strip()
    if not holder_name:
        raise ValidationError({"holder_name": "This field is required."})
    currency = (currency or "").strip().upper()
    rail = get_rail()  # not configured: refused before any write
    with transaction.atomic(), context.acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        candidates = blind_index_candidates(_identity(checked.account_number, checked.routing_code))
        if (
            PayoutAccount.objects.filter(
                account_index__in=candidates, status__in=PAYOUT_ACCOUNT_LIVE
            )
            .exclude(merchant=merchant)
            .exists()
        ):
            log.warning("payout account refused for merchant %s: in use elsewhere", merchant.pk)
            raise PayoutAccountInUse()
        for previous in PayoutAccount.objects.select_for_update().filter(
            merchant=merchant, status__in=PAYOUT_ACCOUNT_LIVE
        ):
            previous.transition_to(PayoutAccount.Status.REPLACED)
            previous.save()
        if merchant.verified_payout_account_id is not None:
            merchant.payouts_enabled = False
            merchant.verified_payout_account = None
            merchant.save()
        account = PayoutAccount(
            merchant=merchant,
            holder_name=holder_name[:200],
            currency=currency,
            **attributes(checked, ("scheme", "country", "account_number", "routing_code", "last4")),
            rail=rail.name,
            expires_at=timezone.now() + datetime.timedelta(days=settings.PAYOUT_VERIFICATION_DAYS),
        )
        try:
            with transaction.atomic():
                create_valid(account)
        except IntegrityError as exc:
            # Another merchant's add of this very account committed first (the unique index on
            # live accounts' blind index decides the race).
            raise PayoutAccountInUse() from exc
        destination = BankAccount(
            holder_name=holder_name,
            country=checked.country,
            currency=currency,
            account_number=checked.account_number,
            routing_code=checked.routing_code,
        )
        for amount in _draw_amounts():
            deposit = MicroDeposit.objects.create(
                account=account, amount=str(amount), rail=rail.name
            )
            # The rail's idempotency key is our row: a retried send never credits twice.
            credit = rail.send_credit(
                account=destination,
                amount=amount,
                description=STATEMENT_TEXT,
                idempotency_key=f"micro-deposit-{deposit.pk}",
            )
            deposit.rail_reference = credit.reference
            if credit.status != deposit.status:
                deposit.transition_to(credit.status)
            deposit.save()
        log.info(
            "payout account %s: %s micro-deposits sent via %s", account.pk, DEPOSITS, rail.name
        )
        return account


def _expired(account: PayoutAccount) -> PayoutVerificationExpired:
    return PayoutVerificationExpired(
        f"The micro-deposits to {account.masked_number} were not confirmed within "
        f"{settings.PAYOUT_VERIFICATION_DAYS} days: add the account again to receive new "
        "deposits."
    )


# Why an account that does not await confirmation cannot be confirmed, by its status: the
# refusal and its message (formatted with the account). An expired one: _expired; a replaced
# one: the default.
_NOT_AWAITING: dict[str, tuple[type[PaymentsError], str]] = {
    PayoutAccount.Status.VERIFIED: (
        PayoutAccountAlreadyVerified,
        "Payout account {0.masked_number} is verified already: nothing to confirm.",
    ),
    PayoutAccount.Status.LOCKED: (
        PayoutVerificationLocked,
        "Payout account {0.masked_number} is locked after {0.attempts} wrong confirmations: "
        "add it again to receive new deposits.",
    ),
    PayoutAccount.Status.FAILED: (
        PayoutAccountNotAwaitingConfirmation,
        "The verification of {0.masked_number} failed: {0.failure_reason}",
    ),
    PayoutAccount.Status.PENDING: (
        PayoutAccountNotAwaitingConfirmation,
        "The micro-deposits to {0.masked_number} are still on their way: confirm them once "
        "they show on the statement.",
    ),
}
_REPLACED = (
    PayoutAccountNotAwaitingConfirmation,
    "Payout account {0.masked_number} was replaced by another one.",
)


def _refuse_unless_awaiting(account: PayoutAccount) -> None:
    if account.status == PayoutAccount.Status.AWAITING_CONFIRMATION:
        return
    if account.status == PayoutAccount.Status.EXPIRED:
        raise _expired(account)
    refusal, message = _NOT_AWAITING.get(account.status, _REPLACED)
    raise refusal(message.format(account))


def payout_account_confirm(
    *, account: PayoutAccount, amounts: list[int], actor: User | None = None
) -> PayoutAccount:
    """The merchant confirms the two amounts (in any order). Right: the account is verified
    and becomes the merchant's payout account. Wrong: the attempt is counted (and kept, though
    the answer is an error); the last allowed one locks the account. Too late: it expires."""
    refusal: PaymentsError  # set on every way out of the block that does not return
    with transaction.atomic(), context.acting(actor):
        account = PayoutAccount.objects.select_for_update().get(pk=account.pk)
        now = timezone.now()
        if (
            account.status == PayoutAccount.Status.AWAITING_CONFIRMATION
            and now >= account.expires_at
        ):
            account.transition_to(PayoutAccount.Status.EXPIRED)
            account.save()
            refusal = _expired(account)
        else:
            _refuse_unless_awaiting(account)  # nothing written: nothing waits for a confirmation
            sent = sorted(int(d.amount) for d in account.deposits.all())
            if len(sent) == DEPOSITS and sorted(amounts) == sent:
                account.transition_to(PayoutAccount.Status.VERIFIED)
                account.verified_at = now
                account.save()
                merchant = Merchant.objects.select_for_update().get(pk=account.merchant_id)
                merchant.verified_payout_account = account
                merchant.save()
                log.info("payout account %s verified", account.pk)
                return account
            account.attempts += 1
            left = max(settings.PAYOUT_VERIFICATION_ATTEMPTS - account.attempts, 0)
            if left == 0:
                account.transition_to(PayoutAccount.Status.LOCKED)
                log.warning(
                    "payout account %s locked after %s attempts", account.pk, account.attempts
                )
            account.save()
            refusal = PayoutAmountsWrong(attempts_left=left)
    # Raised after the commit: the counted attempt (or the expiry) stays written.
    raise refusal


def micro_deposit_apply_rail_state(*, rail: str, report: RailCreditReport) -> MicroDeposit:
    """A rail's event about one of our credits: moves the deposit forward (an older event
    arriving late changes nothing); both sent makes the account wait for the merchant's
    confirmation; a return fails the verification with the bank's reason, even after it
    succeeded, and stops payouts to that account."""
    with transaction.atomic(), context.acting(None):
        deposit = (
            MicroDeposit.objects.select_for_update()
            .filter(rail=rail, rail_reference=report.reference)
            .first()
        )
        if deposit is None:
            raise MicroDepositNotFound(f"No micro-deposit {report.reference} on rail {rail}.")
        stale = (
            deposit.rail_event_at is not None
            and report.occurred_at is not None
            and report.occurred_at < deposit.rail_event_at
        )
        if stale or report.status not in deposit.allowed_targets(deposit.status):
            return deposit
        deposit.transition_to(report.status)
        deposit.rail_event_at = report.occurred_at
        deposit.return_reason = report.return_reason[:64]
        deposit.save()
        account = PayoutAccount.objects.select_for_update().get(pk=deposit.account_id)
        if report.status == MicroDeposit.Status.RETURNED:
            _fail_account(account, report.return_reason or "returned")
        elif (
            account.status == PayoutAccount.Status.PENDING
            and not account.deposits.filter(
                status__in=[MicroDeposit.Status.REQUESTED, MicroDeposit.Status.RETURNED]
            ).exists()
        ):
            account.transition_to(PayoutAccount.Status.AWAITING_CONFIRMATION)
            account.save()
        return deposit


def _fail_account(account: PayoutAccount, reason: str) -> None:
    if PayoutAccount.Status.FAILED not in account.allowed_targets(account.status):
        return  # replaced, locked or expired already: nothing waits on it
    account.transition_to(PayoutAccount.Status.FAILED)
    account.failure_reason = f"a micro-deposit was returned by the bank: {reason}"[:255]
    account.save()
    merchant = Merchant.objects.select_for_update().get(pk=account.merchant_id)
    if merchant.verified_payout_account_id == account.pk:
        merchant.payouts_enabled = False
        merchant.verified_payout_account = None
        merchant.save()
    log.warning("payout account %s failed: %s", account.pk, reason)


def payout_accounts_expire(*, now: datetime.datetime | None = None) -> int:
    """Expire the accounts whose deposits were not confirmed in time (beat, hourly; confirming
    late expires the account too). Returns how many."""
    moment = now or timezone.now()
    due = list(
        PayoutAccount.objects.filter(
            status__in=[PayoutAccount.Status.PENDING, PayoutAccount.Status.AWAITING_CONFIRMATION],
            expires_at__lte=moment,
        ).values_list("pk", flat=True)
    )
    expired = 0
    for pk in due:
        with transaction.atomic(), context.acting(None):
            account = PayoutAccount.objects.select_for_update().get(pk=pk)
            if PayoutAccount.Status.EXPIRED in account.allowed_targets(account.status):
                account.transition_to(PayoutAccount.Status.EXPIRED)
                account.save()
                expired += 1
    return expired


def merchant_payouts_set(
    *, merchant: Merchant, enabled: bool, actor: User | None = None
) -> Merchant:
    """Turn payouts on (only with a verified payout account) or off. Every path goes here or
    through Merchant.clean and the database constraint, which hold the same rule."""
    with transaction.atomic(), context.acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        if enabled:
            account = (
                PayoutAccount.objects.filter(pk=merchant.verified_payout_account_id).first()
                if merchant.verified_payout_account_id
                else None
            )
            if account is None or account.status != PayoutAccount.Status.VERIFIED:
                raise PayoutsNeedVerifiedAccount(merchant=merchant)
        if merchant.payouts_enabled != enabled:
            merchant.payouts_enabled = enabled
            merchant.save()
        return merchant
