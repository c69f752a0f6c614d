"""/audits/compliance/: the latest PCI DSS report, its history, and running it again."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from config.permissions import permission_required

from ..models import ComplianceReport
from .report import as_json, as_markdown, compliance_report_run


@login_required
@permission_required("audits.view_compliancereport", raise_exception=True)
def compliance(request: HttpRequest) -> HttpResponse:
    history = Paginator(ComplianceReport.objects.select_related("created_by"), 20).get_page(
        request.GET.get("page")
    )
    shown_pk = request.GET.get("report")
    shown = (
        get_object_or_404(ComplianceReport, pk=shown_pk)
        if shown_pk and shown_pk.isdigit()
        else ComplianceReport.objects.select_related("created_by").first()
    )
    return render(
        request,
        "audits/compliance.html",
        {
            "report": shown,
            "history": history,
            "may_run": request.user.has_perm("audits.run_compliancereport"),
        },
    )


@login_required
@require_POST
@permission_required("audits.run_compliancereport", raise_exception=True)
def compliance_run(request: HttpRequest) -> HttpResponse:
    report = compliance_report_run(actor=request.user, source="web")
    messages.success(
        request,
        f"Report run: {report.passed} pass, {report.failed} fail, {report.unknown} unknown.",
    )
    return redirect("audits:compliance")


@login_required
@permission_required("audits.view_compliancereport", raise_exception=True)
def compliance_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    report = get_object_or_404(ComplianceReport, pk=pk)
    if fmt == "json":
        body, content_type = as_json(report), "application/json"
    else:
        body, content_type = as_markdown(report), "text/markdown; charset=utf-8"
    response = HttpResponse(body, content_type=content_type)
    name = f"compliance-report-{report.created_at:%Y%m%d-%H%M}.{'json' if fmt == 'json' else 'md'}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
