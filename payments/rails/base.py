"""The bank-rail interface: how a micro-deposit (or, later, a payout) leaves us.

A rail sends a credit and answers at once with its reference; what happens to the credit after
that (sent, settled, returned) arrives later as a signed webhook through the inbox, never by
polling. A real rail is one class with this shape, named in `payments.rails.get_rail`, plus the
handler that reads its events (see the README, "Payout accounts and micro-deposits").
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol

from ..exceptions import PaymentsError


class RailError(PaymentsError):
    """The rail refused the credit (the message is the rail's)."""

    def __init__(self, message: str, *, rail: str = "", code: str = "") -> None:
        self.rail, self.code = rail, code
        super().__init__(f"{rail}: {message}" if rail else message)


class RailNotConfigured(RailError):
    """No bank rail is configured (PAYOUT_RAIL): micro-deposits cannot be sent."""

    http_status = 503


@dataclass(frozen=True)
class BankAccount:
    """Where a credit goes. The number is in clear only in memory, on its way to the rail."""

    holder_name: str
    country: str
    currency: str
    account_number: str  # an IBAN, or a local account number
    routing_code: str = ""  # ABA routing number or sort code, for a local account number


@dataclass(frozen=True)
class RailCredit:
    reference: str  # the rail's id of the credit
    status: str  # a payments.models.MicroDeposit.Status value


@dataclass(frozen=True)
class RailCreditReport:
    """A credit's state as a rail event reports it."""

    reference: str
    status: str  # a payments.models.MicroDeposit.Status value
    occurred_at: datetime.datetime | None
    return_reason: str = ""


class BankRail(Protocol):
    name: str

    def send_credit(
        self, *, account: BankAccount, amount: int, description: str, idempotency_key: str
    ) -> RailCredit:
        """Send `amount` (minor units of the account's currency) to the account. The same
        idempotency key gets the first answer again, never a second credit."""
        ...
