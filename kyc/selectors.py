from __future__ import annotations

import datetime
from typing import Any

from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Cast

from config.querying import narrowed
from payments.models import ApprovalRequest, Merchant

from .models import KYC_SECOND_APPROVAL, CaseNote, KycCase, KycDocument, ScreeningResult


def pending_first_approval(case: KycCase) -> ApprovalRequest | None:
    """A four-eyes case's first approval, while it waits for the second officer."""
    return (
        ApprovalRequest.objects.filter(
            action=KYC_SECOND_APPROVAL,
            target_type="kyc.kyccase",
            target_id=str(case.pk),
            status=ApprovalRequest.Status.PENDING,
        )
        .select_related("requested_by")
        .first()
    )


def kyc_case_final_approval_refusal(
    case: KycCase, user: Any, first_approval: ApprovalRequest
) -> str | None:
    """Why this person may not give a four-eyes case its final approval (None: they may)."""
    if first_approval.requested_by_id == user.pk:
        return "You gave the first approval: another officer gives the final one."
    if case.prepared_by_id == user.pk:
        return "You prepared this case: another officer gives the final approval."
    return None


def kyc_case_approval_blockers(case: KycCase) -> list[str]:
    """What must be judged before any approval, in words an officer acts on (empty: nothing).
    Two queries: the undisposed hits, the documents."""
    hits = list(
        ScreeningResult.objects.filter(case=case, disposition=ScreeningResult.Disposition.PENDING)
        .order_by("-score", "pk")
        .values_list("matched_name", flat=True)
    )
    blockers = []
    if hits:
        blockers.append(
            f"{len(hits)} screening hit{'s' if len(hits) > 1 else ''} not disposed yet "
            f"({', '.join(hits)}): mark each a true match or a false positive"
        )
    documents = list(KycDocument.objects.filter(case=case).order_by("uploaded_at", "pk"))
    if not documents:
        blockers.append("no document has been uploaded")
    waiting = [d for d in documents if d.review_status != KycDocument.ReviewStatus.ACCEPTED]
    if waiting:
        blockers.append(
            "documents not accepted yet: "
            + ", ".join(
                f"{d.get_document_type_display()} ({d.get_review_status_display().lower()})"
                for d in waiting
            )
        )
    return blockers


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


# Who sees more than a case's outcome (status and decision): notes, screening hits, risk
# score and factors, reasons. Payments operations have neither permission (README, Roles).
CASE_DETAIL_PERMISSIONS = ("kyc.view_casenote", "kyc.view_screeningresult")


def sees_case_details(user: Any) -> bool:
    return user.has_perms(CASE_DETAIL_PERMISSIONS)


def kyc_cases_for_merchant(merchant: Merchant) -> QuerySet[KycCase]:
    return (
        KycCase.objects.filter(merchant=merchant)
        .select_related("assignee", "decided_by")
        .order_by("-created_at")
    )


def kyc_documents(case: KycCase) -> QuerySet[KycDocument]:
    return case.documents.select_related("uploaded_by").order_by("uploaded_at")


QUEUE_TABS = [
    "mine",
    "unassigned",
    "waiting_decision",
    "waiting_second_approval",
    "needs_information",
    "escalated",
    "overdue",
    "all",
]
TAB_LABELS = {
    "mine": "Mine",
    "unassigned": "Unassigned",
    "waiting_decision": "Waiting for decision",
    "waiting_second_approval": "Waiting for second approval",
    "needs_information": "Needs information",
    "escalated": "Escalated",
    "overdue": "Overdue",
    "all": "All",
}
OPEN = [
    KycCase.Status.SUBMITTED,
    KycCase.Status.IN_REVIEW,
    KycCase.Status.NEEDS_INFORMATION,
    KycCase.Status.ESCALATED,
]


DECIDABLE = [KycCase.Status.IN_REVIEW, KycCase.Status.ESCALATED]


def _first_approval_pending() -> Exists:
    # On the partial unique index approval_one_pending_per_target.
    return Exists(
        ApprovalRequest.objects.filter(
            action=KYC_SECOND_APPROVAL,
            target_type="kyc.kyccase",
            target_id=Cast(OuterRef("pk"), CharField()),
            status=ApprovalRequest.Status.PENDING,
        )
    )


def _ready_for_an_officer(cases: QuerySet[KycCase]) -> QuerySet[KycCase]:
    """Cases an officer can approve now: the same rules as kyc_case_approval_blockers, in SQL
    (each an EXISTS on an index by case), and no first approval waiting."""
    documents = KycDocument.objects.filter(case=OuterRef("pk"))
    return (
        cases.filter(status__in=DECIDABLE)
        .filter(Exists(documents))
        .exclude(Exists(documents.exclude(review_status=KycDocument.ReviewStatus.ACCEPTED)))
        .exclude(
            Exists(
                ScreeningResult.objects.filter(
                    case=OuterRef("pk"), disposition=ScreeningResult.Disposition.PENDING
                )
            )
        )
        .exclude(_first_approval_pending())
    )


def queue_tab(tab: str, *, user: Any, now: Any) -> QuerySet[KycCase]:
    cases = KycCase.objects.all()
    if tab == "waiting_decision":
        return _ready_for_an_officer(cases)
    if tab == "waiting_second_approval":
        return cases.filter(status__in=DECIDABLE).filter(_first_approval_pending())
    if tab == "mine":
        return cases.filter(assignee=user, status__in=OPEN)
    if tab == "unassigned":
        return cases.filter(assignee__isnull=True, status=KycCase.Status.SUBMITTED)
    if tab == "needs_information":
        return cases.filter(status=KycCase.Status.NEEDS_INFORMATION)
    if tab == "escalated":
        return cases.filter(status=KycCase.Status.ESCALATED)
    if tab == "overdue":
        return cases.filter(
            status__in=[
                KycCase.Status.SUBMITTED,
                KycCase.Status.IN_REVIEW,
                KycCase.Status.ESCALATED,
            ],
            sla_paused_at__isnull=True,
            due_at__lt=now,
        )
    return cases


def queue(
    *,
    tab: str,
    user: Any,
    now: Any,
    risk: str = "",
    kind: str = "",
    country: str = "",
    older_than_days: int | None = None,
    q: str = "",
) -> QuerySet[KycCase]:
    cases = narrowed(
        queue_tab(tab, user=user, now=now).select_related("merchant", "assignee"),
        risk_level=risk,
        kind=kind,
        merchant__country=(country or "").upper(),
        submitted_at__lt=(
            now - datetime.timedelta(days=older_than_days) if older_than_days else None
        ),
    )
    if q:
        q = q.strip()
        cases = cases.filter(
            Q(reference__iexact=q)
            | Q(merchant__legal_name__icontains=q)
            | Q(merchant__trading_name__icontains=q)
        )
    return cases.order_by(F("due_at").asc(nulls_last=True), "pk")


# A badge counts no further: past it, a tab says "1,000+" (a queue that long is read by its
# filters and its order, not by the exact figure), and eight badges cost a few milliseconds.
TAB_COUNT_LIMIT = 1_000


def tab_counts(*, user: Any, now: Any) -> dict[str, int]:
    """One query per tab, each on an index, counting no further than TAB_COUNT_LIMIT + 1 rows:
    the badges cost the same at a million cases as at a thousand ('all' read every row and
    'overdue' every late case before). `count_label` shows a count past it as "1,000+"."""
    return {
        tab: queue_tab(tab, user=user, now=now).order_by()[: TAB_COUNT_LIMIT + 1].count()
        for tab in QUEUE_TABS
    }


def case_timeline(case: KycCase) -> list[LogEntry]:
    """Everything that happened to the case, its documents, notes, screening and approvals."""
    types = ContentType.objects.get_for_models(
        KycCase, KycDocument, CaseNote, ScreeningResult, ApprovalRequest
    )
    documents = [str(pk) for pk in case.documents.values_list("pk", flat=True)]
    notes = [str(pk) for pk in case.notes.values_list("pk", flat=True)]
    results = [str(pk) for pk in case.screening_results.values_list("pk", flat=True)]
    approvals = [
        str(pk)
        for pk in ApprovalRequest.objects.filter(
            target_type="kyc.kyccase", target_id=str(case.pk)
        ).values_list("pk", flat=True)
    ]
    condition = (
        Q(content_type=types[KycCase], object_pk=str(case.pk))
        | Q(content_type=types[KycDocument], object_pk__in=documents)
        | Q(content_type=types[CaseNote], object_pk__in=notes)
        | Q(content_type=types[ScreeningResult], object_pk__in=results)
        | Q(content_type=types[ApprovalRequest], object_pk__in=approvals)
    )
    return list(
        LogEntry.objects.filter(condition)
        .select_related("actor", "content_type")
        .order_by("timestamp", "pk")[:500]
    )


def merchant_timeline(merchant: Merchant, cases: list[KycCase]) -> list[LogEntry]:
    types = ContentType.objects.get_for_models(Merchant, KycCase)
    condition = Q(content_type=types[Merchant], object_pk=str(merchant.pk)) | Q(
        content_type=types[KycCase], object_pk__in=[str(c.pk) for c in cases]
    )
    return list(
        LogEntry.objects.filter(condition)
        .select_related("actor", "content_type")
        .order_by("-timestamp", "-pk")[:200]
    )


def merchant_verification_for_evidence(merchant: Merchant) -> list[str]:
    """The merchant's verification documents, as a line of a dispute's evidence draft (listed in
    settings.DISPUTE_EVIDENCE_SOURCES)."""
    documents = KycDocument.objects.filter(case__merchant=merchant).order_by("case_id", "pk")
    if not documents:
        return []
    return [
        "Merchant verification on file: "
        + ", ".join(
            f"{d.get_document_type_display()} ({d.get_review_status_display()})" for d in documents
        )
    ]
