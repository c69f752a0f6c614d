from __future__ import annotations

from django.db.models import QuerySet

from payments.models import Merchant

from .models import KycCase, KycDocument


def kyc_case_missing(case: KycCase) -> list[str]:
    """What the merchant still has to send, in words they can act on."""
    missing = []
    if case.status == KycCase.Status.NEEDS_INFORMATION and case.information_request:
        missing.append(case.information_request)
    for document in case.documents.filter(review_status__in=["rejected", "reupload_requested"]):
        missing.append(
            f"A new {document.get_document_type_display()} "
            f"({document.review_reason or document.get_review_status_display()})"
        )
    if not case.documents.exists():
        missing.append("At least one identity or registration document")
    return missing


def kyc_cases_for_merchant(merchant: Merchant) -> QuerySet[KycCase]:
    return (
        KycCase.objects.filter(merchant=merchant)
        .select_related("assignee", "decided_by")
        .order_by("-created_at")
    )


def kyc_documents(case: KycCase) -> QuerySet[KycDocument]:
    return case.documents.select_related("uploaded_by").order_by("uploaded_at")
