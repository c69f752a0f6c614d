"""The approval kinds payments declares: what needs a second person, who may decide it, and what
approving it does. settings.APPROVAL_KINDS lists this declaration for the engine
(payments/core/approvals.py)."""

from __future__ import annotations

from . import services
from .core.approvals import ApprovalKind

KINDS = (
    ApprovalKind(
        action=services.REFUND_APPROVAL,
        label="Refund above the approval threshold",
        permission="payments.approve_refund",
        execute=services.refund_execute_approved,
    ),
    ApprovalKind(
        action=services.CHARGEBACK_ACCEPT_APPROVAL,
        label="Accept a chargeback",
        permission="payments.approve_chargeback_accept",
        execute=services.chargeback_execute_accept,
    ),
)
