from __future__ import annotations

from payments.core.errors import DomainError


class KycError(DomainError):
    pass


class NotAllowed(KycError):
    """This person may not take this action on this case (role, assignment or four-eyes)."""

    http_status = 403
