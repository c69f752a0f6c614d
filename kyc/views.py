"""The compliance review screens. Every POST re-checks permission and state in the services
and refuses a stale page: the form carries the status the person saw."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from audits.crypto.fields import ErasedStr
from config.pagination import LargeTablePaginator, count_label
from config.request_types import AuthenticatedHttpRequest
from config.screens import screen
from payments import selectors as payment_selectors
from payments.core.errors import DomainError
from payments.models import ApprovalRequest, Merchant, Payment
from payments.services.disputes import chargeback_ratios

from . import owners, privacy, selectors, services
from .forms import (
    ApproveForm,
    AssignForm,
    BeneficialOwnerForm,
    DocumentReviewForm,
    ErasureForm,
    MessageForm,
    NoteForm,
    PlainActionForm,
    QueueFilterForm,
    ReasonForm,
    RejectForm,
    ScreeningDispositionForm,
)
from .models import BeneficialOwner, KycCase, KycDocument, ScreeningResult


@screen("kyc.view_kyccase", url=("", "queue"))
def queue(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    tab = request.GET.get("tab", "mine" if request.user.has_perm("kyc.change_kyccase") else "all")
    if tab not in selectors.QUEUE_TABS:
        tab = "all"
    form = QueueFilterForm(request.GET or None)
    outcome_only = not selectors.sees_case_details(request.user)
    if outcome_only:
        del form.fields["risk"]  # nor may risk be read by filtering on it
    filters = (
        {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
        if form.is_bound and form.is_valid()
        else {}
    )
    cases = selectors.queue(tab=tab, user=request.user, now=now, **filters)
    page = LargeTablePaginator(cases, 50).get_page(request.GET.get("page"))
    counts = selectors.tab_counts(user=request.user, now=now)
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("tab", None)
    return render(
        request,
        "kyc/queue.html",
        {
            "tab": tab,
            "tabs": [
                (t, selectors.TAB_LABELS[t], count_label(counts[t], selectors.TAB_COUNT_LIMIT))
                for t in selectors.QUEUE_TABS
            ],
            "form": form,
            "page": page,
            "now": now,
            "query": query.urlencode(),
            "filtered": bool(filters),
            "can_take": request.user.has_perm("kyc.change_kyccase"),
            "outcome_only": outcome_only,
        },
    )


@screen(post=True, url=("take-next", "take-next"))
def take_next(request: AuthenticatedHttpRequest) -> HttpResponse:
    try:
        case = services.kyc_case_take_next(actor=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect("kyc:queue")
    if case is None:
        messages.info(request, "No unassigned case is waiting. Well done.")
        return redirect("kyc:queue")
    messages.success(request, f"{case.reference} is yours.")
    return redirect("kyc:case", pk=case.pk)


@dataclass(frozen=True)
class Action:
    label: str
    form: type
    allowed: Callable[[Any, KycCase], bool]
    run: Callable[[KycCase, Any, dict[str, Any]], Any]
    danger: bool = False
    # Why this person cannot take it yet although their role and the case's status allow it:
    # the button is replaced by these reasons (the service refuses the same).
    waits_for: Callable[[Any, KycCase], list[str]] | None = None


def _is_assignee(user: Any, case: KycCase) -> bool:
    return case.assignee_id == user.pk


def _can_work(user: Any) -> bool:
    return user.has_perm("kyc.change_kyccase")


def _can_decide(user: Any, case: KycCase) -> bool:
    return user.has_perm("kyc.decide_kyccase") and case.status in (
        KycCase.Status.IN_REVIEW,
        KycCase.Status.ESCALATED,
    )


def _approval_waits_for(user: Any, case: KycCase) -> list[str]:
    reasons = []
    pending = selectors.pending_first_approval(case) if case.needs_four_eyes else None
    if pending is not None:
        refusal = selectors.kyc_case_final_approval_refusal(case, user, pending)
        if refusal:
            reasons.append(refusal)
    return reasons + selectors.kyc_case_approval_blockers(case)


WORKED = (KycCase.Status.IN_REVIEW, KycCase.Status.ESCALATED)


def _may_dispose(user: Any, case: KycCase) -> bool:
    """The same rule as services.screening_result_dispose."""
    return (
        user.has_perms(("kyc.change_kyccase", "kyc.view_screeningresult"))
        and case.status in WORKED
        and (_is_assignee(user, case) or user.has_perm("kyc.decide_kyccase"))
    )


ACTIONS: dict[str, Action] = {
    "take": Action(
        "Take this case",
        PlainActionForm,
        lambda u, c: (
            _can_work(u)
            and c.assignee_id is None
            and c.status in (KycCase.Status.SUBMITTED, KycCase.Status.ESCALATED)
            and (c.status != KycCase.Status.ESCALATED or u.has_perm("kyc.decide_kyccase"))
        ),
        lambda c, u, d: services.kyc_case_assign_self(case=c, actor=u),
    ),
    "release": Action(
        "Release to the queue",
        PlainActionForm,
        lambda u, c: _is_assignee(u, c) and c.status not in KycCase.DECIDED,
        lambda c, u, d: services.kyc_case_release(case=c, actor=u),
    ),
    "start_review": Action(
        "Start review",
        PlainActionForm,
        lambda u, c: _is_assignee(u, c) and c.status == KycCase.Status.SUBMITTED,
        lambda c, u, d: services.kyc_case_start_review(case=c, actor=u),
    ),
    "request_information": Action(
        "Request information",
        MessageForm,
        lambda u, c: _is_assignee(u, c) and c.status == KycCase.Status.IN_REVIEW,
        lambda c, u, d: services.kyc_case_request_information(
            case=c, actor=u, message=d["message"]
        ),
    ),
    "escalate": Action(
        "Escalate to a compliance officer",
        ReasonForm,
        lambda u, c: _is_assignee(u, c) and c.status == KycCase.Status.IN_REVIEW,
        lambda c, u, d: services.kyc_case_escalate(case=c, actor=u, reason=d["reason"]),
    ),
    "approve": Action(
        "Approve",
        ApproveForm,
        _can_decide,
        lambda c, u, d: services.kyc_case_approve(case=c, actor=u, reason=d["reason"]),
        waits_for=_approval_waits_for,
    ),
    "reject": Action(
        "Reject",
        RejectForm,
        _can_decide,
        lambda c, u, d: services.kyc_case_reject(
            case=c, actor=u, reason_code=d["reason_code"], reason_text=d["reason_text"]
        ),
        danger=True,
    ),
    "reassign": Action(
        "Reassign",
        AssignForm,
        lambda u, c: u.has_perm("kyc.reassign_kyccase") and c.status not in KycCase.DECIDED,
        lambda c, u, d: services.kyc_case_assign(case=c, actor=u, assignee=d["assignee"]),
    ),
}


def _dispose_form(result: ScreeningResult, case: KycCase, data: Any = None) -> Any:
    form = ScreeningDispositionForm(
        data,
        initial={"seen_status": case.status, "result": result.pk},
        auto_id=f"id_hit{result.pk}_%s",
    )
    form.result_pk = result.pk
    return form


def _case_context(request: HttpRequest, case: KycCase, bound_dispose: Any = None) -> dict[str, Any]:
    user = request.user
    pending = selectors.pending_first_approval(case)
    # Each form gets its own ids, so that every label points at its own field.
    actions = []
    waiting: list[tuple[str, list[str]]] = []
    for name, action in ACTIONS.items():
        if not action.allowed(user, case):
            continue
        reasons = action.waits_for(user, case) if action.waits_for else []
        if reasons:
            waiting.append((action.label, reasons))
            continue
        form = action.form(initial={"seen_status": case.status}, auto_id=f"id_{name}_%s")
        actions.append((name, action, form))
    can_documents = user.has_perm("kyc.download_kycdocument")
    if not selectors.sees_case_details(user):
        # Least data: the outcome only; notes, screening, risk and reasons are not even read.
        return {
            "case": case,
            "merchant": case.merchant,
            "outcome_only": True,
            "actions": actions,
            "waiting": waiting,
            "first_approval": None,
            "documents": None,
            "now": timezone.now(),
        }
    may_dispose = _may_dispose(user, case)
    screening = [
        (
            r,
            bound_dispose
            if bound_dispose is not None and bound_dispose.result_pk == r.pk
            else (_dispose_form(r, case) if may_dispose else None),
        )
        for r in case.screening_results.select_related("disposed_by")
    ]
    return {
        "case": case,
        "merchant": case.merchant,
        "actions": actions,
        "waiting": waiting,
        "first_approval": pending,
        "documents": list(selectors.kyc_documents(case))
        if user.has_perm("kyc.view_kycdocument")
        else None,
        "can_documents": can_documents,
        "can_review_documents": _is_assignee(user, case)
        and user.has_perm("kyc.change_kycdocument")
        and case.status in WORKED,
        "review_form": DocumentReviewForm,
        "screening": screening,
        "notes": list(case.notes.select_related("author")),
        "note_form": NoteForm() if user.has_perm("kyc.add_casenote") else None,
        "timeline": selectors.case_timeline(case),
        "missing": selectors.kyc_case_missing(case),
        "now": timezone.now(),
    }


@screen("kyc.view_kyccase", url=("cases/<int:pk>/", "case"))
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_object_or_404(
        KycCase.objects.select_related("merchant", "assignee", "decided_by", "prepared_by"), pk=pk
    )
    return render(request, "kyc/case.html", _case_context(request, case))


@screen("kyc.add_casenote", post=True, url=("cases/<int:pk>/note", "case-note"))
def case_note(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    case = get_object_or_404(KycCase, pk=pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        services.kyc_case_add_note(case=case, text=form.cleaned_data["text"], actor=request.user)
        messages.success(request, "Note added.")
    else:
        messages.error(request, "Write the note before adding it.")
    return redirect("kyc:case", pk=pk)


@screen(post=True, url=("cases/<int:pk>/documents/review", "document-review"))
def document_review(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    case = get_object_or_404(KycCase, pk=pk)
    form = DocumentReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a decision and confirm it.")
        return redirect("kyc:case", pk=pk)
    if form.cleaned_data["seen_status"] != case.status:
        messages.error(request, f"{case.reference} changed since you opened it. Nothing was done.")
        return redirect("kyc:case", pk=pk)
    document = get_object_or_404(KycDocument, pk=form.cleaned_data["document"], case=case)
    try:
        services.kyc_document_review(
            document=document,
            actor=request.user,
            review_status=form.cleaned_data["review_status"],
            reason=form.cleaned_data["reason"],
        )
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Document {document.pk}: {form.cleaned_data['review_status'].replace('_', ' ')}.",
        )
    return redirect("kyc:case", pk=pk)


@screen(
    "kyc.change_kyccase", post=True, url=("cases/<int:pk>/screening/dispose", "screening-dispose")
)
def screening_dispose(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Mark one screening hit a true match or a false positive; a mistake is shown next to its
    field, on the case page, with what was typed."""
    case = get_object_or_404(
        KycCase.objects.select_related("merchant", "assignee", "decided_by", "prepared_by"), pk=pk
    )
    try:
        result_pk = int(request.POST.get("result", ""))
    except ValueError:
        raise Http404 from None
    result = get_object_or_404(ScreeningResult, pk=result_pk, case=case)
    form = _dispose_form(result, case, request.POST)
    if form.is_valid():
        if form.cleaned_data["seen_status"] != case.status:
            form.add_error(
                None,
                f"{case.reference} changed since you opened it (it is now "
                f"{case.get_status_display()}). Nothing was done; check and try again.",
            )
        else:
            try:
                services.screening_result_dispose(
                    result=result,
                    disposition=form.cleaned_data["disposition"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                result.refresh_from_db()
                messages.success(
                    request,
                    f"Screening hit {result.matched_name}: {result.get_disposition_display()}.",
                )
                return redirect("kyc:case", pk=pk)
    if not selectors.sees_case_details(request.user):
        raise PermissionDenied
    return render(request, "kyc/case.html", _case_context(request, case, form), status=400)


# Defined after the case's other routes, which its <slug:action> would otherwise take.
@screen("kyc.view_kyccase", post=True, url=("cases/<int:pk>/<slug:action>", "case-action"))
def case_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    case = get_object_or_404(KycCase.objects.select_related("merchant"), pk=pk)
    spec = ACTIONS.get(action)
    if spec is None:
        messages.error(request, "Unknown action.")
        return redirect("kyc:case", pk=pk)
    form = spec.form(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else ""
            for error in errors:
                messages.error(request, f"{spec.label}: {label + ' — ' if label else ''}{error}")
        return redirect("kyc:case", pk=pk)
    if form.cleaned_data["seen_status"] != case.status:
        messages.error(
            request,
            f"{case.reference} changed since you opened it (it is now "
            f"{case.get_status_display()}). Nothing was done; check and try again.",
        )
        return redirect("kyc:case", pk=pk)
    if not spec.allowed(request.user, case):
        messages.error(request, f"You cannot {spec.label.lower()} on this case now.")
        return redirect("kyc:case", pk=pk)
    try:
        spec.run(case, request.user, form.cleaned_data)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{spec.label}: done.")
    return redirect("kyc:case", pk=pk)


@screen("kyc.download_kycdocument", url=("documents/<int:pk>/<slug:disposition>", "document-file"))
def document_file(request: AuthenticatedHttpRequest, pk: int, disposition: str) -> FileResponse:
    """The document itself, for permitted staff only; every view and download is audited."""
    document = get_object_or_404(KycDocument, pk=pk)
    if disposition not in ("view", "download"):
        raise PermissionDenied
    services.kyc_document_record_access(document=document, actor=request.user, kind=disposition)
    response = FileResponse(
        document.file.open("rb"),
        content_type=document.content_type,
        as_attachment=disposition == "download",
        filename=document.original_name or f"document-{document.pk}",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    response["Cache-Control"] = "no-store"
    return response


@screen("payments.view_merchant", url=("merchants/<int:pk>/", "merchant"))
def merchant_detail(request: HttpRequest, pk: int) -> HttpResponse:
    merchant = get_object_or_404(Merchant, pk=pk)
    cases = list(selectors.kyc_cases_for_merchant(merchant))
    now = timezone.now()
    ratio = next(
        (r for r in chargeback_ratios(month=now.date()) if r.merchant_id == merchant.pk), None
    )
    can_payments = request.user.has_perm("payments.view_payment")
    payments = (
        list(Payment.objects.filter(merchant=merchant).order_by("-pk")[:20])
        if can_payments
        else None
    )
    open_approvals = ApprovalRequest.objects.filter(
        status=ApprovalRequest.Status.PENDING,
        target_type__in=["kyc.kyccase"],
        target_id__in=[str(c.pk) for c in cases],
    ).select_related("requested_by")
    return render(
        request,
        "kyc/merchant.html",
        {
            "outcome_only": not selectors.sees_case_details(request.user),
            "merchant": merchant,
            "cases": cases,
            "payments": payments,
            "ratio": ratio,
            "approvals": list(open_approvals),
            "timeline": selectors.merchant_timeline(merchant, cases),
            "owners": list(BeneficialOwner.objects.filter(merchant=merchant)),
            "can_add_owner": request.user.has_perm("kyc.add_beneficialowner"),
            "can_edit_owner": request.user.has_perm("kyc.change_beneficialowner")
            and request.user.has_perm("payments.view_merchant_contact"),
            "can_export_subject": request.user.has_perm("kyc.decide_kyccase")
            and request.user.has_perm("payments.view_merchant_contact")
            and bool(merchant.contact_email),
            "can_erase_subject": request.user.has_perm("payments.erase_merchant_contact")
            and bool(merchant.contact_email)
            and not isinstance(merchant.contact_email, ErasedStr),
            "erasure_form": ErasureForm(),
            "can_suspend": request.user.has_perm("kyc.decide_kyccase")
            and merchant.status == Merchant.Status.ACTIVE,
            "suspend_form": ReasonForm(initial={"seen_status": merchant.status}),
            "payments_timeline": payment_selectors.audit_timeline(
                objects=[("payments.merchant", merchant.pk)], limit=50
            ),
            "payout_account": payment_selectors.payout_account_current(merchant_id=merchant.pk),
        },
    )


@screen(
    "kyc.decide_kyccase",
    "payments.view_merchant_contact",
    post=True,
    url=("merchants/<int:pk>/subject-export", "merchant-subject-export"),
)
def merchant_subject_export(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A data-subject access request answered: everything held about this merchant's contact
    person, as a JSON download (kyc/privacy.py); recorded in the security trail."""
    merchant = get_object_or_404(Merchant, pk=pk)
    try:
        document = privacy.subject_data_export(email=merchant.contact_email, actor=request.user)
    except privacy.SubjectNotFound as exc:
        messages.error(request, str(exc))
        return redirect("kyc:merchant", pk=pk)
    response = HttpResponse(
        json.dumps(document, indent=2), content_type="application/json; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="subject-data-merchant-{pk}.json"'
    response["Cache-Control"] = "no-store"
    return response


@screen(
    "payments.erase_merchant_contact",
    post=True,
    url=("merchants/<int:pk>/subject-erase", "merchant-subject-erase"),
)
def merchant_subject_erase(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A data-subject erasure request answered by crypto-shredding (kyc/privacy.py), or
    refused with each legal hold named; either way recorded in the security trail."""
    merchant = get_object_or_404(Merchant, pk=pk)
    form = ErasureForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the request's reference and tick the confirmation to erase.")
        return redirect("kyc:merchant", pk=pk)
    try:
        erasure = privacy.subject_erase(
            email=merchant.contact_email, actor=request.user, reason=form.cleaned_data["reason"]
        )
    except (privacy.SubjectNotFound, DomainError) as exc:  # a legal hold's refusal included
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"The contact person's data is erased: {erasure.keys_destroyed} key(s) destroyed; "
            "every copy, audit rows included, now reads as (erased).",
        )
    return redirect("kyc:merchant", pk=pk)


@screen("kyc.decide_kyccase", post=True, url=("merchants/<int:pk>/suspend", "merchant-suspend"))
def merchant_suspend(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    merchant = get_object_or_404(Merchant, pk=pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason and tick the confirmation to suspend.")
    elif form.cleaned_data["seen_status"] != merchant.status:
        messages.error(request, "The merchant changed since you opened the page. Nothing was done.")
    else:
        try:
            services.merchant_suspend_for_finding(
                merchant=merchant, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except DomainError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{merchant} is suspended.")
    return redirect("kyc:merchant", pk=pk)


def _owner_form_page(
    request: HttpRequest, form: BeneficialOwnerForm, merchant: Merchant, owner: Any, status: int
) -> HttpResponse:
    return render(
        request,
        "kyc/owner_form.html",
        {"form": form, "merchant": merchant, "owner": owner},
        status=status,
    )


def _save_owner(
    request: AuthenticatedHttpRequest, form: BeneficialOwnerForm, save: Callable[..., Any]
) -> bool:
    """Runs the service with the form's fields; its refusals go next to the fields."""
    if not form.is_valid():
        return False
    try:
        save(**form.cleaned_data, actor=request.user)
    except owners.InvalidOwner as exc:
        for field, message in exc.errors.items():
            form.add_error(field if field in form.fields else None, message)
        return False
    except DomainError as exc:
        form.add_error(None, str(exc))
        return False
    return True


@screen("kyc.add_beneficialowner", url=("merchants/<int:pk>/owners/add", "owner-add"))
def owner_add(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    merchant = get_object_or_404(Merchant, pk=pk)
    form = BeneficialOwnerForm(request.POST or None)
    if request.method == "POST":
        if _save_owner(
            request, form, lambda **f: owners.beneficial_owner_add(merchant=merchant, **f)
        ):
            messages.success(request, "Beneficial owner added.")
            return redirect("kyc:merchant", pk=pk)
        return _owner_form_page(request, form, merchant, None, 400)
    return _owner_form_page(request, form, merchant, None, 200)


@screen(
    "kyc.change_beneficialowner",
    "payments.view_merchant_contact",  # the form shows the owner's personal data
    url=("owners/<int:pk>/", "owner-edit"),
)
def owner_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    owner = get_object_or_404(BeneficialOwner.objects.select_related("merchant"), pk=pk)
    if request.method == "POST":
        form = BeneficialOwnerForm(request.POST)
        if _save_owner(request, form, lambda **f: owners.beneficial_owner_update(owner=owner, **f)):
            messages.success(request, "Beneficial owner saved.")
            return redirect("kyc:merchant", pk=owner.merchant_id)
        return _owner_form_page(request, form, owner.merchant, owner, 400)
    form = BeneficialOwnerForm(
        initial={name: getattr(owner, name) for name in BeneficialOwnerForm.base_fields}
    )
    return _owner_form_page(request, form, owner.merchant, owner, 200)
