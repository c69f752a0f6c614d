"""The approval kinds payments declares: what needs a second person, who may decide it, and what
approving it does. settings.APPROVAL_KINDS lists this declaration for the engine
(payments/core/approvals.py)."""

from __future__ import annotations

from .core.approvals import ApprovalKind
from .services.disputes import CHARGEBACK_ACCEPT_APPROVAL, chargeback_execute_accept
from .services.refunds import REFUND_APPROVAL, refund_execute_approved

KINDS = (
    ApprovalKind(
        action=REFUND_APPROVAL,
        label="Refund above the approval threshold",
        permission="payments.approve_refund",
        execute=refund_execute_approved,
        target_url_name="payments:payment-detail",
    ),
    ApprovalKind(
        action=CHARGEBACK_ACCEPT_APPROVAL,
        label="Accept a chargeback",
        permission="payments.approve_chargeback_accept",
        execute=chargeback_execute_accept,
        target_url_name="payments:dispute-detail",
    ),
)
