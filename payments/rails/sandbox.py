"""The sandbox bank rail: micro-deposits for the demo and the tests, DEBUG only, like the sandbox
gateway whose store, signing and delivery it shares (payments/gateways/sandbox.py).

A credit is recorded at once (status `requested`); its `credit.sent` event follows a moment
later and then `credit.settled`, or `credit.returned` for the test accounts that a bank would
refuse (see RETURNING_ACCOUNTS). The events are signed with SANDBOX_WEBHOOK_SECRET and come in
through /webhooks/sandbox/ and the inbox like every other sandbox event. The sandbox keeps the
amount and the account's last four, never the account number.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction

from ..gateways.sandbox import (
    amount_fields,
    emit_event,
    first_with_key,
    new_object,
    refuse_unless_enabled,
    webhook_delay,
)
from ..models import SandboxObject
from .base import BankAccount, RailCredit, RailError, RailNotConfigured

NAME = "sandbox"

# Test accounts whose credits the bank returns: Stripe's failing SEPA test IBAN
# (AT861904300235473202) and its closed US test account (000111111113), by their last four.
RETURNING_ACCOUNTS = {"3202": "account_closed", "1113": "account_closed"}


class SandboxRail:
    name = NAME

    @classmethod
    def from_settings(cls) -> SandboxRail:
        refuse_unless_enabled("rail", partial(RailNotConfigured, rail=NAME))
        return cls()

    def send_credit(
        self, *, account: BankAccount, amount: int, description: str, idempotency_key: str
    ) -> RailCredit:
        if not 0 < amount < 100_000_00:
            raise RailError(f"Cannot send {amount}.", rail=NAME, code="amount_invalid")
        last4 = account.account_number[-4:]
        with transaction.atomic():
            row = first_with_key(SandboxObject.Kind.CREDIT, idempotency_key)
            if row is None:
                row = new_object(
                    SandboxObject.Kind.CREDIT,
                    "cr",
                    **amount_fields("requested", amount, account.currency),
                    last4=last4,
                    description=description[:64],
                    return_reason="",
                    idempotency_key=idempotency_key,
                )
                emit_event("credit.sent", row, delay=webhook_delay(), change={"status": "sent"})
                reason = RETURNING_ACCOUNTS.get(last4)
                emit_event(
                    "credit.returned" if reason else "credit.settled",
                    row,
                    delay=2 * webhook_delay() + 1,
                    change={"status": "returned", "return_reason": reason}
                    if reason
                    else {"status": "settled"},
                )
        return RailCredit(reference=row.reference, status=row.data["status"])
