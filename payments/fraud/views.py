"""The fraud screens: the alert queue and an alert (assign, note, close as fraud or false
positive), the rules with their measured precision, and a rule's versions with its edit form
and dry run. Thin: validate, call one service or selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from config.request_types import AuthenticatedHttpRequest
from config.screens import record_page, screen

from ..core.errors import DomainError
from ..screens import form_data, refusals_shown
from . import selectors, services
from .checks import CATALOGUE
from .dry_run import fraud_rule_dry_run
from .forms import AssignForm, CloseForm, NoteForm, RuleEditForm
from .models import AlertStatus, FraudAlert, FraudRule

QUEUE_TABS = {
    "open": AlertStatus.OPEN,
    "fraud": AlertStatus.FRAUD,
    "false-positive": AlertStatus.FALSE_POSITIVE,
}


@screen("payments.view_fraudalert", url=("payments/fraud/alerts/", "fraud-alerts"))
def alert_queue(request: HttpRequest) -> HttpResponse:
    tab = request.GET.get("tab", "open")
    if tab not in QUEUE_TABS:
        tab = "open"
    alerts = selectors.fraud_alert_queue(status=QUEUE_TABS[tab])[:200]
    return render(
        request,
        "payments/fraud/alert_queue.html",
        {"alerts": alerts, "tab": tab, "tabs": QUEUE_TABS},
    )


@screen("payments.view_fraudalert", url=("payments/fraud/alerts/<int:pk>/", "fraud-alert"))
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        alert = selectors.fraud_alert_detail(pk=pk)
    except FraudAlert.DoesNotExist as exc:
        raise Http404("No such alert.") from exc
    return render(
        request,
        "payments/fraud/alert_detail.html",
        {
            "alert": alert,
            "hits": selectors.fraud_alert_hits(alert=alert),
            "notes": alert.notes.select_related("author"),
            "evaluations": selectors.fraud_evaluations_for_payment(payment_id=alert.payment_id)[
                :20
            ],
            "can_review": request.user.has_perm(services.REVIEW_ALERTS),
            "assign_form": AssignForm(
                reviewers=selectors.fraud_reviewers(), initial={"assignee": alert.assignee_id}
            ),
            "note_form": NoteForm(),
            "close_form": CloseForm(),
            **record_page(
                f"Fraud alert {alert.pk}",
                alert.get_status_display(),
                back=("payments:fraud-alerts", "Fraud alerts"),
            ),
        },
    )


@screen(post=True, url=("payments/fraud/alerts/<int:pk>/<slug:action>", "fraud-alert-action"))
def alert_action(request: AuthenticatedHttpRequest, pk: int, action: str) -> HttpResponse:
    if not request.user.has_perm(services.REVIEW_ALERTS):
        raise PermissionDenied
    alert = get_object_or_404(FraudAlert, pk=pk)
    with refusals_shown(request):
        if action == "assign":
            form: Form = AssignForm(request.POST, reviewers=selectors.fraud_reviewers())
            data = form_data(form, "Choose someone who reviews fraud alerts.")
            services.fraud_alert_assign(alert=alert, assignee=data["assignee"], actor=request.user)
            messages.success(request, "Assignee saved.")
        elif action == "note":
            data = form_data(NoteForm(request.POST), "Write the note first.")
            services.fraud_alert_note(alert=alert, text=data["text"], actor=request.user)
            messages.success(request, "Note added.")
        elif action == "close":
            form = CloseForm(request.POST)
            data = form_data(form, "Choose fraud or false positive, and say why.")
            services.fraud_alert_close(
                alert=alert, outcome=data["outcome"], note=data["note"], actor=request.user
            )
            messages.success(request, f"Alert closed: {alert.pk}.")
        else:
            raise Http404("No such action.")
    return redirect("payments:fraud-alert", pk=alert.pk)


@screen("payments.view_fraudrule", url=("payments/fraud/rules/", "fraud-rules"))
def rule_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "payments/fraud/rule_list.html",
        {"rows": selectors.fraud_rules_with_precision(), "catalogue": CATALOGUE},
    )


@screen("payments.view_fraudrule", url=("payments/fraud/rules/<int:pk>/", "fraud-rule"))
def rule_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A rule's versions; for compliance officers its edit form, which either replays the
    changed rule over the last 90 days (dry run, writes nothing) or saves the next version."""
    rule = get_object_or_404(FraudRule.objects.select_related("created_by"), pk=pk)
    current = FraudRule.objects.filter(key=rule.key, is_current=True).first() or rule
    can_edit = request.user.has_perm(services.EDIT_RULES)
    form = RuleEditForm(rule=current)
    dry_run = None
    status = 200
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied
        form = RuleEditForm(request.POST, rule=current)
        if form.is_valid():
            data = form.cleaned_data
            if "save" in request.POST:
                try:
                    saved = services.fraud_rule_change(
                        rule=current,
                        name=data["name"],
                        params=data["params"],
                        score=data["score"],
                        enabled=data["enabled"],
                        note=data["note"],
                        actor=request.user,  # type: ignore[arg-type]
                    )
                except DomainError as exc:
                    form.add_error(None, str(exc))
                    status = 400
                else:
                    messages.success(request, f"Saved: {saved} is live.")
                    return redirect("payments:fraud-rule", pk=saved.pk)
            else:
                dry_run = fraud_rule_dry_run(
                    kind=current.kind, params=data["params"], current_params=current.params
                )
        else:
            status = 400
    return render(
        request,
        "payments/fraud/rule_detail.html",
        {
            "rule": rule,
            "current": current,
            "versions": selectors.fraud_rule_versions(key=rule.key),
            "form": form,
            "can_edit": can_edit,
            "dry_run": dry_run,
            "check": CATALOGUE[current.kind],
        },
        status=status,
    )
