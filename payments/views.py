"""Operations screens: payments, disputes, the approvals inbox, webhook events. Thin: validate,
call one service or selector, render. Domain errors become messages or form errors, never a 500."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.forms import Form
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from audits.behaviour import staff_activity_record
from audits.models import StaffActivityKind
from config.db_router import replica_reads
from config.querying import streamed
from config.request_types import AuthenticatedHttpRequest
from config.screens import record_page, screen
from config.streaming import csv_response

from . import selectors
from .core import approvals
from .core.errors import DomainError
from .core.money import format_major
from .forms import (
    ConfirmForm,
    DecisionForm,
    EvidenceForm,
    EvidenceUploadForm,
    PaymentFilterForm,
    ReasonForm,
    RefundForm,
)
from .gateway_problems import staff_message
from .gateways import GatewayError
from .inbox.store import webhook_event_requeue
from .models import (
    ApprovalRequest,
    Chargeback,
    ChargebackEvidence,
    Gateway,
    Payment,
    WebhookEvent,
)
from .screens import form_data, refusals_shown
from .services.disputes import (
    chargeback_accept_request,
    chargeback_assign,
    evidence_add_file,
    evidence_save_draft,
    evidence_submit,
)
from .services.refunds import refund_request


def _filters(request: HttpRequest) -> tuple[PaymentFilterForm, dict[str, Any]]:
    form = PaymentFilterForm(request.GET or None)
    if form.is_bound and form.is_valid():
        return form, {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
    return form, {}


def _after(request: HttpRequest) -> int | None:
    # str.isdigit() accepts "²" (int() does not) and any length (PostgreSQL's bigint does not):
    # either was a 500. An unusable value starts from the first page.
    value = request.GET.get("after", "")
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        return None
    return int(value)


@screen("payments.view_payment", url=("payments/", "payment-list"))
@replica_reads
def payment_list(request: HttpRequest) -> HttpResponse:
    form, filters = _filters(request)
    payments, next_after = selectors.keyset_page(
        selectors.payment_search(**filters), after=_after(request)
    )
    query = request.GET.copy()
    query.pop("after", None)
    return render(
        request,
        "payments/payment_list.html",
        {
            "form": form,
            "payments": payments,
            "next_after": next_after,
            "query": query.urlencode(),
            "filtered": bool(filters),
        },
    )


PAYMENT_CSV_HEADER = [
    "id",
    "created_at",
    "merchant",
    "gateway",
    "gateway_reference",
    "status",
    "currency",
    "amount",
    "amount_minor",
    "captured_minor",
    "refunded_minor",
    "card_brand",
    "card_last4",
]


@screen("payments.view_payment", url=("payments/export.csv", "payment-export"))
@replica_reads
def payment_export(request: HttpRequest) -> StreamingHttpResponse:
    """The whole filtered result as CSV, streamed row by row: not capped, not held in memory."""
    _, filters = _filters(request)
    staff_activity_record(user=request.user, kind=StaffActivityKind.EXPORT)
    rows = (
        [
            p.pk,
            p.created_at.isoformat(),
            p.merchant.legal_name,
            p.gateway,
            p.gateway_reference,
            p.status,
            p.currency,
            format_major(p.amount, p.currency),
            p.amount,
            p.captured_amount,
            p.refunded_amount,
            p.card_brand,
            p.card_last4,
        ]
        for p in streamed(selectors.payment_search(**filters))
    )
    return csv_response(PAYMENT_CSV_HEADER, rows, stem="payments")


@screen("payments.view_payment", url=("payments/<int:pk>/", "payment-detail"))
def payment_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    payment = get_object_or_404(Payment.objects.select_related("merchant"), pk=pk)
    form = RefundForm(payment=payment)
    if request.method == "POST":
        if not request.user.has_perm("payments.add_refund"):
            raise PermissionDenied
        form = RefundForm(request.POST, payment=payment)
        if form.is_valid():
            try:
                outcome = refund_request(
                    payment=payment,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    reason_detail=form.cleaned_data["reason_detail"],
                    actor=request.user,
                )
            except GatewayError as exc:
                form.add_error(None, staff_message(exc, gateway=payment.gateway))
            except DomainError as exc:
                form.add_error("amount", str(exc))
            else:
                if outcome.needs_approval:
                    messages.info(
                        request,
                        "The refund is above the approval threshold: it "
                        "waits for a second person in the approvals inbox.",
                    )
                else:
                    messages.success(request, "Refund requested; it is being sent to the gateway.")
                return redirect("payments:payment-detail", pk=payment.pk)
    return render(
        request,
        "payments/payment_detail.html",
        {
            "payment": payment,
            "refunds": payment.refunds.select_related("requested_by").order_by("-created_at"),
            "chargebacks": payment.chargebacks.order_by("-created_at"),
            "approvals": selectors.approvals_for(payment),
            "timeline": selectors.payment_timeline(payment),
            "refund_form": form,
            "can_refund": request.user.has_perm("payments.add_refund")
            and payment.status in Payment.REFUNDABLE,
            **record_page(
                f"Payment {payment.pk}",
                payment.get_status_display(),
                back=("payments:payment-list", "Payments"),
            ),
        },
    )


@screen("payments.view_chargeback", url=("disputes/", "dispute-list"))
def dispute_list(request: HttpRequest) -> HttpResponse:
    show = request.GET.get("show", "open")
    mine = show == "mine"
    chargebacks = selectors.chargeback_desk(
        open_only=show != "all",
        gateway=request.GET.get("gateway", ""),
        assignee_id=request.user.pk if mine else None,
    )
    rows = chargebacks[:200]
    return render(
        request,
        "payments/dispute_list.html",
        {
            "chargebacks": rows,
            "show": show,
            "now": timezone.now(),
            "soon": timezone.now() + datetime.timedelta(days=settings.CHARGEBACK_DUE_SOON_DAYS),
        },
    )


def _evidence_draft(chargeback: Chargeback) -> str:
    """What we hold, as a first draft for the evidence text."""
    payment = chargeback.payment
    merchant = payment.merchant
    lines = [
        f"Dispute {chargeback.gateway_reference} ({chargeback.reason}) on payment "
        f"{payment.gateway_reference}.",
        f"Merchant: {merchant.legal_name} ({merchant.country}).",
        f"Payment: {format_major(payment.amount, payment.currency)} {payment.currency}, "
        f"{payment.get_status_display()}, made {payment.created_at:%Y-%m-%d %H:%M} UTC with "
        f"{payment.card_brand or 'a card'} ending {payment.card_last4 or '----'}.",
        f"Customer email on file: {payment.customer_email or 'none'}.",
    ]
    refunds = list(payment.refunds.all())
    if refunds:
        lines.append(
            "Refunds: "
            + "; ".join(
                f"{format_major(r.amount, payment.currency)} {r.get_status_display()} "
                f"({r.created_at:%Y-%m-%d})"
                for r in refunds
            )
        )
    lines += selectors.merchant_facts_for_evidence(merchant)
    lines.append("History of the payment:")
    lines += [
        f"- {row.created_at:%Y-%m-%d %H:%M} {row.action_type} by {row.user}"
        for row in selectors.payment_timeline(payment)
    ]
    return "\n".join(lines)


@screen("payments.view_chargeback", url=("disputes/<int:pk>/", "dispute-detail"))
def dispute_detail(request: HttpRequest, pk: int) -> HttpResponse:
    chargeback = get_object_or_404(
        Chargeback.objects.select_related("payment__merchant", "assignee").prefetch_related(
            "payment__refunds"
        ),
        pk=pk,
    )
    evidence = (
        ChargebackEvidence.objects.filter(chargeback=chargeback).prefetch_related("files").first()
    )
    draft = evidence.text if evidence and evidence.text else _evidence_draft(chargeback)
    return render(
        request,
        "payments/dispute_detail.html",
        {
            "chargeback": chargeback,
            "payment": chargeback.payment,
            "evidence": evidence,
            "evidence_form": EvidenceForm(initial={"text": draft}),
            "upload_form": EvidenceUploadForm(),
            "submit_form": ConfirmForm(),
            "accept_form": ReasonForm(),
            "approvals": selectors.approvals_for(chargeback),
            "timeline": selectors.payment_timeline(chargeback.payment),
            "can_act": request.user.has_perm("payments.change_chargeback"),
            **record_page(
                f"Dispute {chargeback.gateway_reference}",
                chargeback.get_status_display(),
                back=("payments:dispute-list", "Disputes"),
            ),
        },
    )


def _staff_words(gateway: str = "") -> Callable[[DomainError], str]:
    """A refusal as staff read it: a gateway's in gateway_problems' words."""

    def worded(exc: DomainError) -> str:
        return staff_message(exc, gateway=gateway) if isinstance(exc, GatewayError) else str(exc)

    return worded


def _chargeback_action(request: HttpRequest, pk: int) -> Chargeback:
    if not request.user.has_perm("payments.change_chargeback"):
        raise PermissionDenied
    return get_object_or_404(Chargeback, pk=pk)


@screen(post=True, url=("disputes/<int:pk>/<slug:action>", "dispute-action"))
def dispute_action(request: AuthenticatedHttpRequest, pk: int, action: str) -> HttpResponse:
    chargeback = _chargeback_action(request, pk)
    with refusals_shown(request, worded=_staff_words(chargeback.gateway)):
        if action == "save":
            data = form_data(EvidenceForm(request.POST), "Write the evidence before saving it.")
            evidence_save_draft(chargeback=chargeback, text=data["text"], actor=request.user)
            messages.success(request, "Draft saved.")
        elif action == "upload":
            form: Form = EvidenceUploadForm(request.POST, request.FILES)
            data = form_data(form, "Choose a file to upload.")
            evidence_add_file(chargeback=chargeback, upload=data["file"], actor=request.user)
            messages.success(request, "Document added to the evidence.")
        elif action == "submit":
            form_data(ConfirmForm(request.POST), "Tick the confirmation to submit the evidence.")
            evidence_submit(chargeback=chargeback, actor=request.user)
            messages.success(request, "Evidence submitted to the gateway.")
        elif action == "accept":
            form = ReasonForm(request.POST)
            data = form_data(form, "Give a reason and tick the confirmation to accept.")
            chargeback_accept_request(
                chargeback=chargeback, reason=data["reason"], actor=request.user
            )
            messages.info(
                request, "Accepting needs a second person: the request is in the approvals inbox."
            )
        elif action == "assign":
            chargeback_assign(chargeback=chargeback, assignee=request.user, actor=request.user)
            messages.success(request, "The dispute is assigned to you.")
        else:
            raise DomainError("Unknown action.")
    return redirect("payments:dispute-detail", pk=chargeback.pk)


@screen("payments.view_approvalrequest", url=("payments/approvals/", "approvals"))
def approval_inbox(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "payments/approvals.html",
        {"rows": selectors.approval_inbox_rows(limit=200), "form": DecisionForm()},
    )


@screen(
    "payments.view_approvalrequest",
    post=True,
    url=("payments/approvals/<int:pk>/decide", "approval-decide"),
)
def approval_decide(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    approval = get_object_or_404(ApprovalRequest, pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))  # an ErrorList yields its messages as text
        return redirect("payments:approvals")
    # Approving may call the gateway (accepting a dispute): its refusal is worded for staff.
    with refusals_shown(request, worded=_staff_words()):
        if form.cleaned_data["decision"] == "approve":
            approvals.approval_approve(
                request=approval, actor=request.user, note=form.cleaned_data["note"]
            )
            messages.success(request, f"Approved: {approval}.")
        else:
            approvals.approval_reject(
                request=approval, actor=request.user, note=form.cleaned_data["note"]
            )
            messages.success(request, f"Rejected: {approval}.")
    return redirect("payments:approvals")


@screen("payments.view_webhookevent", url=("payments/webhooks/", "webhook-list"))
def webhook_list(request: HttpRequest) -> HttpResponse:
    """Webhook events that need a person (attempts spent, by default) with their error and
    evidence; replay from here."""
    from .inbox.verify import webhook_event_reverify

    show = request.GET.get("show", "spent")
    if show not in selectors.WEBHOOK_DESK_VIEWS:
        show = "spent"
    provider = request.GET.get("provider", "")
    if provider not in Gateway.values:
        provider = ""
    events, next_after = selectors.keyset_page(
        selectors.webhook_event_desk(show=show, provider=provider), after=_after(request)
    )
    query = request.GET.copy()
    query.pop("after", None)
    return render(
        request,
        "payments/webhook_list.html",
        {
            "rows": [(event, webhook_event_reverify(event)) for event in events],
            "show": show,
            "views": selectors.WEBHOOK_DESK_VIEWS,
            "provider": provider,
            "next_after": next_after,
            "query": query.urlencode(),
            "max_attempts": settings.WEBHOOK_MAX_ATTEMPTS,
            "can_replay": request.user.has_perm("payments.change_webhookevent"),
        },
    )


@screen(post=True, url=("payments/webhooks/<int:pk>/replay", "webhook-replay"))
def webhook_replay(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    if not request.user.has_perm("payments.change_webhookevent"):
        raise PermissionDenied
    event = get_object_or_404(WebhookEvent, pk=pk)
    event = webhook_event_requeue(event=event, actor=request.user)
    messages.success(
        request,
        f"{event.get_provider_display()} event {event.event_id} ({event.event_type}) is queued "
        f"for processing again, with a fresh set of {settings.WEBHOOK_MAX_ATTEMPTS} attempts.",
    )
    show = request.POST.get("show", "")
    url = reverse("payments:webhook-list")
    return redirect(f"{url}?show={show}" if show in selectors.WEBHOOK_DESK_VIEWS else url)


@screen("payments.view_payment", url=("payments/reconciliation/", "reconciliation"))
def reconciliation(request: HttpRequest) -> HttpResponse:
    """The newest reconcile run of each gateway: what it fixed, and the differences and errors
    left for a person."""
    return render(
        request,
        "payments/reconciliation.html",
        {"runs": selectors.reconcile_runs_latest()},
    )
