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
import dataclasses
import datetime
import hashlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from auditlog.models import LogEntry
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audits import context
from audits.behaviour import staff_activity_record
from audits.context import system_user_id
from audits.models import StaffActivityKind
from payments.core import approvals
from payments.core.records import create_valid
from payments.core.uploads import check_upload, store_checked_upload
from payments.models import ApprovalRequest, Merchant
from payments.services.merchants import merchant_activate_after_kyc, merchant_set_status

from .exceptions import KycError, NotAllowed, NotReadyForApproval
from .models import (
    KYC_SECOND_APPROVAL,
    CaseNote,
    KycCase,
    KycDocument,
    ScreeningListEntry,
    ScreeningListLoad,
    ScreeningResult,
)
from .risk import score_case
from .screening import Match, hit_key, names_to_screen
from .screening_lists import ParsedList
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


def kyc_merchant_owners_changed(*, merchant: Merchant) -> None:
    """A beneficial owner was added or changed (kyc.owners): a first approval given on the
    earlier facts of an open case of this merchant is void, as for a document."""
    open_cases = KycCase.objects.filter(merchant=merchant).exclude(status__in=KycCase.DECIDED)
    for case in open_cases.order_by("pk"):
        _void_first_approval(case, "a beneficial owner changed")


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


def _screening_result(case: KycCase, provider: str, match: Match) -> ScreeningResult:
    return ScreeningResult(
        case=case,
        provider=provider,
        screened_name=match.screened_name[:200],
        matched_name=match.matched_name[:200],
        list_name=match.list_name,
        category=match.category,
        score=match.score,
        source_id=match.source_id,
    )


def _known_hits(results: Any) -> set[tuple[str, str, str]]:
    return {
        hit_key(screened, list_name, source_id, matched)
        for screened, list_name, source_id, matched in results.values_list(
            "screened_name", "list_name", "source_id", "matched_name"
        )
    }


def kyc_case_screen(*, case: KycCase) -> list[ScreeningResult]:
    """Screen the merchant's names, its contact's and its beneficial owners'
    (screening.names_to_screen); store hits, raise the risk, void a first approval when the
    results change."""
    from .screening import get_provider, names_to_screen

    provider = get_provider()
    with transaction.atomic():
        case = _lock(case)
        matches = provider.screen(names_to_screen(case.merchant))
        known = _known_hits(ScreeningResult.objects.filter(case=case))
        new = [_screening_result(case, provider.name, m) for m in matches if m.key not in known]
        for result in new:
            result.save()
        if new:
            case.screening_hit = True
            _void_first_approval(case, "a screening result changed")
        _rescore(case)
        case.save()
        return new


# --- Screening lists and ongoing monitoring --------------------------------------------------


def screening_list_replace(
    *,
    feed: str,
    format: str,
    file_name: str,
    parsed: ParsedList,
    actor: User | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 5000,
) -> ScreeningListLoad:
    """The feed's entries replaced whole by the parsed file's, in one transaction: screening
    sees the old list or the new one, never a mix. The load is audited; its id is the new list
    version."""
    feed = (feed or "").strip()
    if not feed:
        raise KycError("Name the feed the list is loaded into.")
    with transaction.atomic(), context.acting(actor):
        now = timezone.now()
        load = create_valid(
            ScreeningListLoad(
                feed=feed,
                format=format,
                file_name=file_name[-255:],
                sha256=parsed.sha256,
                entry_count=len(parsed.entries),
                name_count=sum(1 + len(e.aliases) for e in parsed.entries),
                skipped=parsed.skipped,
                loaded_at=now,
            )
        )
        ScreeningListEntry.objects.filter(feed=feed).delete()
        for start in range(0, len(parsed.entries), batch_size):
            chunk = parsed.entries[start : start + batch_size]
            ScreeningListEntry.objects.bulk_create(
                ScreeningListEntry(
                    load=load,
                    feed=feed,
                    source_id=e.source_id,
                    name=e.name,
                    aliases=e.aliases,
                    normalised_name=e.normalised_name,
                    normalised_aliases=e.normalised_aliases,
                    list_name=e.list_name,
                    category=e.category,
                    loaded_at=now,
                )
                for e in chunk
            )
            if progress:
                progress(start + len(chunk))
        return load


@dataclasses.dataclass
class RescreenTally:
    merchants: int = 0
    names: int = 0
    hits: int = 0
    new_hits: int = 0
    cases_opened: int = 0
    cases_reopened: int = 0  # an open case that got a new hit


def _monitoring_case(merchant: Merchant) -> tuple[KycCase, bool]:
    """The merchant's open case, locked, or a new submitted one for the review queue."""
    open_case = (
        KycCase.objects.select_for_update()
        .filter(merchant=merchant)
        .exclude(status__in=KycCase.DECIDED)
        .order_by("-created_at", "-pk")
        .first()
    )
    if open_case is not None:
        return open_case, False
    last = KycCase.objects.filter(merchant=merchant).order_by("-created_at", "-pk").first()
    case = create_valid(
        KycCase(
            merchant=merchant,
            kind=last.kind if last else KycCase.Kind.KYB,
            risk_level=merchant.risk_level,
            ownership_layers=last.ownership_layers if last else 1,
        )
    )
    case.transition_to(KycCase.Status.SUBMITTED)
    case.submitted_at = timezone.now()
    return case, True


def merchant_monitoring_record(
    *, merchant: Merchant, matches: list[Match], provider: str, tally: RescreenTally
) -> list[ScreeningResult]:
    """Ongoing monitoring found these hits for an active merchant: the ones not already
    recorded on one of its cases (whatever their disposition) go to review, on its open case or
    on a new case in the queue. A hit seen before reopens nothing."""
    with transaction.atomic():
        # Two runs at once (a nightly task and a command) must not open two cases.
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        known = _known_hits(ScreeningResult.objects.filter(case__merchant=merchant))
        fresh = list({m.key: m for m in matches if m.key not in known}.values())
        if not fresh:
            return []
        case, opened = _monitoring_case(merchant)
        new = [_screening_result(case, provider, m) for m in fresh]
        for result in new:
            result.save()
        case.screening_hit = True
        _void_first_approval(case, "a screening result changed")
        _rescore(case)
        if opened:
            case.due_at = _due_at(case.risk_level, case.submitted_at or timezone.now())
        case.save()
        CaseNote.objects.create(
            case=case,
            author_id=system_user_id(),
            text="Ongoing screening found "
            + "; ".join(
                f"{r.screened_name} ~ {r.matched_name} ({r.list_name}, {r.score})" for r in new
            )
            + (": a new case for review." if opened else "."),
        )
        tally.new_hits += len(new)
        tally.cases_opened += opened
        tally.cases_reopened += not opened
        return new


def merchants_rescreen(
    *,
    batch_size: int = 500,
    progress: Callable[[RescreenTally, int], None] | None = None,
) -> RescreenTally:
    """Re-screen every active merchant (ongoing monitoring) against the current list, in
    batches by id; see merchant_monitoring_record for what a hit does."""
    from .screening import get_provider

    provider = get_provider()
    tally = RescreenTally()
    active = Merchant.objects.filter(status=Merchant.Status.ACTIVE)
    total = active.count()
    last_pk = 0
    while True:
        batch = list(active.filter(pk__gt=last_pk).order_by("pk")[:batch_size])
        if not batch:
            break
        last_pk = batch[-1].pk
        screened = {m.pk: names_to_screen(m) for m in batch}
        # One screen() for the batch: one list-version check, each distinct name once.
        by_name: dict[str, list[Match]] = {}
        distinct = list(dict.fromkeys(n for names in screened.values() for n in names))
        for match in provider.screen(distinct):
            by_name.setdefault(match.screened_name, []).append(match)
        found = {
            pk: [m for name in names for m in by_name.get(name, [])]
            for pk, names in screened.items()
        }
        for merchant in batch:
            if found[merchant.pk]:
                merchant_monitoring_record(
                    merchant=merchant,
                    matches=found[merchant.pk],
                    provider=provider.name,
                    tally=tally,
                )
        tally.merchants += len(batch)
        tally.names += sum(len(n) for n in screened.values())
        tally.hits += sum(len(m) for m in found.values())
        if progress:
            progress(tally, total)
    return tally


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
