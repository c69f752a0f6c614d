"""The approval kinds KYC declares (settings.APPROVAL_KINDS lists this declaration for the
engine in payments/core/approvals.py)."""

from __future__ import annotations

from payments.core.approvals import ApprovalKind

from . import services
from .models import KYC_SECOND_APPROVAL

KINDS = (
    ApprovalKind(
        action=KYC_SECOND_APPROVAL,
        label="Second approval of a high-risk KYC case",
        # The four-eyes rule: the second approval is a decision on the case.
        permission="kyc.decide_kyccase",
        execute=services.kyc_case_execute_second_approval,
        target_url_name="kyc:case",
    ),
)
