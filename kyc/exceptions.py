from __future__ import annotations

from payments.state import DomainError, InvalidTransition

__all__ = ["DomainError", "InvalidTransition", "KycError", "NotAllowed"]


class KycError(DomainError):
    pass


class NotAllowed(KycError):
    """This person may not take this action on this case (role, assignment or four-eyes)."""
