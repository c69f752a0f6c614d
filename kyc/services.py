"""The KYC/KYB workflow. Every step is one transaction that locks the case, checks who may act
and in which state, and is audited with its actor (and its reason, kept on the case).

Four eyes: a high-risk case (risk high, or a screening hit) needs two approvals by two
different compliance officers, and the analyst who prepared the case cannot give the final
one. The first approval is an ApprovalRequest (payments.approvals); it is void when a document,
a screening result or a hit's disposition changes after it.

Before any approval (the only one, the first or the final, whichever path: screen, approvals
inbox, console action), every screening hit is disposed (true match or false positive, with a
reason) and every document accepted.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from auditlog.models import LogEntry
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audits import context
from audits.behaviour import staff_activity_record
from audits.models import StaffActivityKind
from payments.core import approvals
from payments.core.records import create_valid
from payments.core.uploads import check_upload, store_checked_upload
from payments.models import ApprovalRequest, Merchant
from payments.services.merchants import merchant_activate_after_kyc, merchant_set_status

from .exceptions import KycError, NotAllowed, NotReadyForApproval
from .models import KYC_SECOND_APPROVAL, CaseNote, KycCase, KycDocument, ScreeningResult
from .risk import score_case
from .selectors import (
    kyc_case_approval_blockers,
    kyc_case_final_approval_refusal,
    pending_first_approval,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

REJECTION_REASONS = {
    "identity_unverified": "Identity could not be verified",
    "ownership_unclear": "Ownership could not be established",
    "sanctions_match": "Confirmed sanctions or PEP match",
    "prohibited_business": "Prohibited or unsupported business",
    "documents_invalid": "Documents invalid or forged",
    "no_response": "No response to information requests",
    "other": "Other",
}
OPEN_FOR_DOCUMENTS = {
    KycCase.Status.DRAFT,
    KycCase.Status.SUBMITTED,
    KycCase.Status.IN_REVIEW,
    KycCase.Status.NEEDS_INFORMATION,
    KycCase.Status.ESCALATED,
}


def _lock(case: KycCase) -> KycCase:
    return KycCase.objects.select_for_update().select_related("merchant").get(pk=case.pk)


def _require(actor: User | None, permission: str) -> None:
    if actor is not None and not actor.has_perm(permission):
        raise NotAllowed(f"This needs the permission '{permission}'.")


def _require_assignee(case: KycCase, actor: User | None) -> None:
    if actor is not None and case.assignee_id != actor.pk:
        raise NotAllowed(
            f"Only the assignee of {case.reference} works it"
            f"{'' if case.assignee_id else ' (take it first)'}."
        )


@contextlib.contextmanager
def _assignee_works(case: KycCase, actor: User) -> Iterator[KycCase]:
    """The case, locked, for its assignee only, in one transaction that records who acts."""
    with transaction.atomic(), context.acting(actor):
        case = _lock(case)
        _require_assignee(case, actor)
        yield case


def _reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise KycError(f"Give a reason to {what}.")
    return reason


def _due_at(risk_level: str, start: datetime.datetime) -> datetime.datetime:
    return start + datetime.timedelta(hours=settings.KYC_TURNAROUND_HOURS[risk_level])


def _rescore(case: KycCase) -> None:
    case.risk_score, level, case.risk_factors = score_case(case)
    # Screening hits and scores only ever raise the level set by a person; never lower it.
    order = ["low", "medium", "high"]
    if order.index(level) > order.index(case.risk_level):
        case.risk_level = level


# --- Intake ---------------------------------------------------------------------------------


def kyc_case_create(
    *, merchant: Merchant, kind: str, actor: User | None = None, ownership_layers: int = 1
) -> KycCase:
    with transaction.atomic(), context.acting(actor):
        case = create_valid(
            KycCase(
                merchant=merchant,
                kind=kind,
                risk_level=merchant.risk_level,
                ownership_layers=ownership_layers,
            )
        )
        return case


def kyc_case_submit(*, case: KycCase, actor: User | None = None) -> KycCase:
    from .tasks import screen_case

    with transaction.atomic(), context.acting(actor):
        case = _lock(case)
        case.transition_to(KycCase.Status.SUBMITTED)
        now = timezone.now()
        case.submitted_at = now
        _rescore(case)
        case.due_at = _due_at(case.risk_level, now)
        case.save()
        transaction.on_commit(lambda: screen_case.delay(case.pk), robust=True)
        return case


def kyc_case_resubmit(*, case: KycCase, actor: User | None = None) -> KycCase:
    """The merchant answered: the case is back in the queue and the SLA clock runs again from
    where it stopped (the due date moves by the time spent waiting)."""
    with transaction.atomic(), context.acting(actor):
        case = _lock(case)
        case.transition_to(KycCase.Status.SUBMITTED)
        now = timezone.now()
        if case.sla_paused_at is not None and case.due_at is not None:
            case.due_at += now - case.sla_paused_at
        case.sla_paused_at = None
        case.save()
        return case


def kyc_document_upload(
    *, case: KycCase, document_type: str, upload: Any, actor: User | None = None
) -> KycDocument:
    """A PDF, PNG or JPEG (type read from the content), within the size limit, stored outside
    the web root under a random name with its SHA-256."""
    checked = check_upload(upload, max_bytes=settings.KYC_DOCUMENT_MAX_BYTES)
    if document_type not in KycDocument.DocumentType.values:
        raise KycError(f"Unknown document type '{document_type}'.")
    with transaction.atomic(), context.acting(actor):
        case = _lock(case)
        if case.status not in OPEN_FOR_DOCUMENTS:
            raise KycError(
                f"{case.reference} is {case.get_status_display()}: documents can no "
                f"longer be added."
            )
        document = store_checked_upload(
            KycDocument(case=case, document_type=document_type, uploaded_by=actor),
            upload,
            checked,
        )
        _void_first_approval(case, "a document was added")
        return document


# --- Working the queue ----------------------------------------------------------------------


def kyc_case_take_next(*, actor: User) -> KycCase | None:
    """The oldest unassigned case this analyst may work, assigned to them. Two analysts
    clicking at once get two different cases: rows locked by the other are skipped."""
    _require(actor, "kyc.change_kyccase")
    with transaction.atomic(), context.acting(actor):
        queue = KycCase.objects.filter(status=KycCase.Status.SUBMITTED, assignee__isnull=True)
        if not actor.has_perm("kyc.decide_kyccase"):
            queue = queue.exclude(status=KycCase.Status.ESCALATED)
        queue = queue.order_by("due_at", "submitted_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            queue = queue.select_for_update(skip_locked=True)
        else:
            queue = queue.select_for_update()
        case = queue.first()
        if case is None:
            return None
        case.assignee = actor
        case.save()
        return case


def kyc_case_assign(*, case: KycCase, assignee: User | None, actor: User) -> KycCase:
    """A lead (re)assigns a case, or takes it off everyone's list."""
    _require(actor, "kyc.reassign_kyccase")
    with transaction.atomic(), context.acting(actor):
        case = _lock(case)
        if case.status in KycCase.DECIDED:
            raise KycError(f"{case.reference} is decided.")
        if assignee is not None and not assignee.has_perm("kyc.change_kyccase"):
            raise KycError(f"{assignee} cannot work KYC cases.")
        case.assignee = assignee
        case.save()
        return case


def kyc_case_release(*, case: KycCase, actor: User) -> KycCase:
    with _assignee_works(case, actor) as case:
        case.assignee = None
        case.save()
        return case


def kyc_case_start_review(*, case: KycCase, actor: User) -> KycCase:
    _require(actor, "kyc.change_kyccase")
    with _assignee_works(case, actor) as case:
        case.transition_to(KycCase.Status.IN_REVIEW)
        case.prepared_by = actor
        case.save()
        return case


def kyc_case_request_information(*, case: KycCase, message: str, actor: User) -> KycCase:
    _require(actor, "kyc.change_kyccase")
    message = _reason(message, "say what is missing")
    with _assignee_works(case, actor) as case:
        case.transition_to(KycCase.Status.NEEDS_INFORMATION)
        case.information_request = message
        case.sla_paused_at = timezone.now()
        case.save()
        CaseNote.objects.create(case=case, author=actor, text=f"Information requested: {message}")
        return case


def kyc_case_escalate(*, case: KycCase, reason: str, actor: User | None) -> KycCase:
    reason = _reason(reason, "escalate")
    with transaction.atomic(), context.acting(actor):
        case = _lock(case)
        if actor is not None:
            _require(actor, "kyc.change_kyccase")
            _require_assignee(case, actor)
        case.transition_to(KycCase.Status.ESCALATED)
        case.escalation_reason = reason
        case.assignee = None  # to the compliance officers' queue
        case.save()
        return case


def kyc_case_add_note(*, case: KycCase, text: str, actor: User) -> CaseNote:
    _require(actor, "kyc.add_casenote")
    text = _reason(text, "add a note")
    with transaction.atomic(), context.acting(actor):
        return CaseNote.objects.create(case=_lock(case), author=actor, text=text)


# --- Decisions ------------------------------------------------------------------------------


def _evidence_fingerprint(case: KycCase) -> str:
    documents = (
        KycDocument.objects.filter(case=case)
        .order_by("pk")
        .values_list("pk", "sha256", "review_status")
    )
    results = (
        ScreeningResult.objects.filter(case=case)
        .order_by("pk")
        .values_list("pk", "matched_name", "score", "disposition")
    )
    return hashlib.sha256(repr((list(documents), list(results))).encode()).hexdigest()


def _void_first_approval(case: KycCase, why: str) -> None:
    pending = pending_first_approval(case)
    if pending is not None:
        approvals.approval_void(request=pending, note=f"void: {why} after the first approval")


def _require_ready(case: KycCase) -> None:
    blockers = kyc_case_approval_blockers(case)
    if blockers:
        raise NotReadyForApproval(
            f"{case.reference} cannot be approved yet: {'; '.join(blockers)}."
        )


def kyc_case_approve(*, case: KycCase, actor: User, reason: str = "") -> KycCase:
    """Approve, or for a four-eyes case give the first or the second approval."""
    _require(actor, "kyc.decide_kyccase")
    with transaction.atomic(), context.acting(actor):
        case = _lock(case)
        if case.status in KycCase.DECIDED:
            raise KycError(f"{case.reference} is already {case.get_status_display().lower()}.")
        case.check_transition(current=case.status, target=KycCase.Status.APPROVED)
        pending = pending_first_approval(case) if case.needs_four_eyes else None
        if pending is not None:
            refusal = kyc_case_final_approval_refusal(case, actor, pending)
            if refusal:
                raise NotAllowed(refusal)
        _require_ready(case)
        if not case.needs_four_eyes:
            return _decide(case, actor=actor, decision=KycCase.Decision.APPROVE, reason=reason)
        if pending is None:
            approvals.approval_request(
                action=KYC_SECOND_APPROVAL,
                target=case,
                actor=actor,
                payload={"fingerprint": _evidence_fingerprint(case)},
                reason=reason or "first approval",
            )
            return case
        # The kind's executor, kyc_case_execute_second_approval, returns the case.
        return cast(KycCase, approvals.approval_approve(request=pending, actor=actor, note=reason))


def kyc_case_execute_second_approval(request: ApprovalRequest, actor: User) -> KycCase:
    """What approving a KYC_SECOND_APPROVAL request does (declared in kyc/approvals.py)."""
    case = _lock(KycCase.objects.get(pk=int(request.target_id)))
    refusal = kyc_case_final_approval_refusal(case, actor, request)
    if refusal:
        raise NotAllowed(refusal)
    _require_ready(case)  # before the fingerprint: its message says what to do
    if request.payload.get("fingerprint") != _evidence_fingerprint(case):
        raise KycError("Documents or screening changed after the first approval: it is void.")
    return _decide(
        case,
        actor=actor,
        decision=KycCase.Decision.APPROVE,
        reason=request.decision_note or request.reason,
    )


def kyc_case_reject(*, case: KycCase, reason_code: str, reason_text: str, actor: User) -> KycCase:
    _require(actor, "kyc.decide_kyccase")
    if reason_code not in REJECTION_REASONS:
        raise KycError("Choose a rejection reason from the list.")
    text = _reason(reason_text, "reject") if reason_code == "other" else (reason_text or "")
    with transaction.atomic(), context.acting(actor):
        case = _lock(case)
        _void_first_approval(case, "the case was rejected")
        full = f"{REJECTION_REASONS[reason_code]}{': ' + text if text else ''}"
        return _decide(case, actor=actor, decision=KycCase.Decision.REJECT, reason=full)


def _decide(case: KycCase, *, actor: User, decision: str, reason: str) -> KycCase:
    target = (
        KycCase.Status.APPROVED if decision == KycCase.Decision.APPROVE else KycCase.Status.REJECTED
    )
    case.transition_to(target)
    case.decision, case.decided_by, case.decided_at = decision, actor, timezone.now()
    case.decision_reason = reason or ("approved" if decision == "approve" else "")
    case.assignee = None
    case.save()
    merchant = Merchant.objects.select_for_update().get(pk=case.merchant_id)
    if decision == KycCase.Decision.APPROVE:
        if merchant.status in (Merchant.Status.PENDING, Merchant.Status.SUSPENDED):
            # The approved case is the proof payments checks before it activates.
            merchant_activate_after_kyc(merchant=merchant, approved_case=case, actor=actor)
    elif merchant.status == Merchant.Status.ACTIVE:
        # A rejected case keeps the merchant from taking payments.
        merchant_set_status(
            merchant=merchant,
            status=Merchant.Status.SUSPENDED,
            reason=f"KYC case {case.reference} rejected",
            actor=actor,
        )
    return case


def merchant_suspend_for_finding(*, merchant: Merchant, reason: str, actor: User) -> Merchant:
    """A later adverse finding suspends an active merchant, with the reason on record."""
    _require(actor, "kyc.decide_kyccase")
    reason = _reason(reason, "suspend a merchant")
    with transaction.atomic(), context.acting(actor):
        return merchant_set_status(
            merchant=merchant, status=Merchant.Status.SUSPENDED, reason=reason, actor=actor
        )


# --- Documents and screening ------------------------------------------------------------------


def kyc_document_review(
    *, document: KycDocument, review_status: str, reason: str = "", actor: User
) -> KycDocument:
    """Accept, reject (with a reason) or ask for a new upload, which sends the case back to the
    merchant (needs information)."""
    _require(actor, "kyc.change_kycdocument")
    if review_status not in {"accepted", "rejected", "reupload_requested"}:
        raise KycError("Accept, reject or ask for a new upload.")
    if review_status != "accepted":
        reason = _reason(reason, "reject a document or ask for a new one")
    with _assignee_works(document.case, actor) as case:
        document = KycDocument.objects.select_for_update().get(pk=document.pk)
        document.review_status, document.review_reason = review_status, reason
        document.save()
        _void_first_approval(case, "a document review changed")
        if review_status == "reupload_requested":
            case.refresh_from_db()
            if case.status == KycCase.Status.IN_REVIEW:
                case = kyc_case_request_information(
                    case=case,
                    actor=actor,
                    message=f"Please upload a new {document.get_document_type_display()}: {reason}",
                )
        return document


def screening_result_dispose(
    *, result: ScreeningResult, disposition: str, reason: str, actor: User
) -> ScreeningResult:
    """A person's judgement of a screening hit: a true match or a false positive, with the
    reason, by the case's assignee or a compliance officer while the case is worked. Changing it
    later (a correction) voids a first approval given on the earlier judgement."""
    _require(actor, "kyc.change_kyccase")
    _require(actor, "kyc.view_screeningresult")
    choices = ScreeningResult.Disposition
    if disposition not in (choices.TRUE_MATCH, choices.FALSE_POSITIVE):
        raise KycError("Mark the hit a true match or a false positive.")
    reason = _reason(reason, "dispose of a screening hit")
    with transaction.atomic(), context.acting(actor):
        case = _lock(KycCase(pk=result.case_id))
        if case.status not in (KycCase.Status.IN_REVIEW, KycCase.Status.ESCALATED):
            raise KycError(
                f"{case.reference} is {case.get_status_display().lower()}: screening hits are "
                f"disposed while the case is in review or escalated."
            )
        if case.assignee_id != actor.pk and not actor.has_perm("kyc.decide_kyccase"):
            raise NotAllowed(
                f"Only the assignee of {case.reference} or a compliance officer disposes of "
                f"its screening hits."
            )
        result = ScreeningResult.objects.select_for_update().get(pk=result.pk, case=case)
        if result.disposition == disposition:
            raise KycError(f"This hit is already marked {result.get_disposition_display()}.")
        result.disposition, result.disposition_reason = disposition, reason
        result.disposed_by, result.disposed_at = actor, timezone.now()
        result.save()
        _void_first_approval(case, "a screening hit's disposition changed")
        return result


def kyc_document_record_access(*, document: KycDocument, actor: User, kind: str) -> None:
    """Every view and download of a document is in the audit log."""
    with transaction.atomic():
        ctx = context.current()
        LogEntry.objects.log_create(
            document,
            action=LogEntry.Action.ACCESS,
            force_log=True,
            actor=actor,
            remote_addr=ctx.ip_address,
            cid=ctx.request_id or None,
            additional_data={"access": kind, "device_id": ctx.device_id, "source": ctx.source},
        )
        if kind == "download":
            staff_activity_record(user=actor, kind=StaffActivityKind.DOCUMENT_DOWNLOAD)


def kyc_case_screen(*, case: KycCase) -> list[ScreeningResult]:
    """Screen the merchant's names; store hits, raise the risk, void a first approval when the
    results change."""
    from .screening import get_provider

    provider = get_provider()
    with transaction.atomic():
        case = _lock(case)
        merchant = case.merchant
        names = list(
            dict.fromkeys(
                filter(None, [merchant.legal_name, merchant.trading_name, merchant.contact_name])
            )
        )
        matches = provider.screen(names)
        known = set(
            ScreeningResult.objects.filter(case=case).values_list(
                "screened_name", "matched_name", "list_name"
            )
        )
        new = [
            ScreeningResult(
                case=case,
                provider=provider.name,
                screened_name=m.screened_name,
                matched_name=m.matched_name,
                list_name=m.list_name,
                category=m.category,
                score=m.score,
            )
            for m in matches
            if (m.screened_name, m.matched_name, m.list_name) not in known
        ]
        for result in new:
            result.save()
        if new:
            case.screening_hit = True
            _void_first_approval(case, "a screening result changed")
        _rescore(case)
        case.save()
        return new


def _stamp(case: KycCase, **moments: datetime.datetime) -> None:
    """Record when the SLA sweep noticed something about a case (its own transaction)."""
    with transaction.atomic():
        locked = _lock(case)
        for name, moment in moments.items():
            setattr(locked, name, moment)
        locked.save()


def kyc_sla_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Notify assignees of cases due within a day, mark overdue cases, escalate cases overdue
    for longer than KYC_ESCALATE_AFTER_OVERDUE_HOURS."""
    from django.core.mail import send_mail

    now = now or timezone.now()
    open_cases = KycCase.objects.filter(
        status__in=[KycCase.Status.SUBMITTED, KycCase.Status.IN_REVIEW],
        sla_paused_at__isnull=True,
        due_at__isnull=False,
    )
    notified = 0
    for case in open_cases.filter(
        due_at__gt=now,
        due_at__lte=now + datetime.timedelta(days=1),
        due_soon_notified_at__isnull=True,
        assignee__isnull=False,
    ).select_related("assignee"):
        assignee = case.assignee  # never None: the query asks for an assignee
        if assignee is not None and assignee.email:
            send_mail(
                f"{case.reference} is due {case.due_at:%Y-%m-%d %H:%M} UTC",
                f"The KYC case {case.reference} you work is due within a day.",
                None,
                [assignee.email],
            )
        _stamp(case, due_soon_notified_at=now)
        notified += 1
    marked = 0
    for case in open_cases.filter(due_at__lte=now, overdue_since__isnull=True):
        _stamp(case, overdue_since=now)
        marked += 1
    escalated = 0
    limit = now - datetime.timedelta(hours=settings.KYC_ESCALATE_AFTER_OVERDUE_HOURS)
    for case in open_cases.filter(due_at__lte=limit):
        kyc_case_escalate(
            case=case, actor=None, reason=f"overdue since {case.due_at:%Y-%m-%d %H:%M} UTC"
        )
        escalated += 1
    return {"notified": notified, "overdue": marked, "escalated": escalated}


def kyc_case_assign_self(*, case: KycCase, actor: User) -> KycCase:
    """Take one particular unassigned case (escalated ones only by compliance officers)."""
    _require(actor, "kyc.change_kyccase")
    with transaction.atomic(), context.acting(actor):
        case = _lock(case)
        if case.assignee_id is not None:
            raise KycError(f"{case.reference} is already taken by {case.assignee}.")
        if case.status == KycCase.Status.ESCALATED:
            _require(actor, "kyc.decide_kyccase")
        elif case.status != KycCase.Status.SUBMITTED:
            raise KycError(f"{case.reference} is {case.get_status_display()}: not in the queue.")
        case.assignee = actor
        case.save()
        return case
