"""Bank rails behind one small interface (base.BankRail): services ask `get_rail()`."""

from __future__ import annotations

from django.conf import settings

from .base import BankAccount, BankRail, RailCredit, RailCreditReport, RailError, RailNotConfigured


def get_rail(name: str | None = None) -> BankRail:
    chosen = settings.PAYOUT_RAIL if name is None else name
    if chosen == "sandbox":
        from .sandbox import SandboxRail

        return SandboxRail.from_settings()
    raise RailNotConfigured(
        "No bank rail is configured: set PAYOUT_RAIL (the sandbox rail needs DEBUG)."
        if not chosen
        else f"Unknown bank rail '{chosen}'."
    )


__all__ = [
    "BankAccount",
    "BankRail",
    "RailCredit",
    "RailCreditReport",
    "RailError",
    "RailNotConfigured",
    "get_rail",
]
