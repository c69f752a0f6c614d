from __future__ import annotations

from payments.core.errors import DomainError


class KycError(DomainError):
    pass


class NotAllowed(KycError):
    """This person may not take this action on this case (role, assignment or four-eyes)."""

    http_status = 403


class NotReadyForApproval(KycError):
    """The case's evidence is not all judged: a screening hit undisposed, a document not
    accepted. The message says which."""

    http_status = 409
