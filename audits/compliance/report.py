"""Run the checks, keep the report, and write it as Markdown or JSON."""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction

from ..models import ComplianceReport
from .checks import FAIL, PASS, UNKNOWN, run_checks

STANDARD = "PCI DSS v4.0.1"
SYMBOL = {PASS: "PASS", FAIL: "FAIL", UNKNOWN: "UNKNOWN"}


def compliance_report_run(*, actor: Any = None, source: str) -> ComplianceReport:
    findings = [finding.as_dict() for finding in run_checks()]
    statuses = [f["status"] for f in findings]
    with transaction.atomic():
        return ComplianceReport.objects.create(
            created_by=actor,
            source=source,
            findings=findings,
            passed=statuses.count(PASS),
            failed=statuses.count(FAIL),
            unknown=statuses.count(UNKNOWN),
        )


def as_json(report: ComplianceReport) -> str:
    return json.dumps(
        {
            "standard": STANDARD,
            "created_at": report.created_at.isoformat(),
            "created_by": report.created_by.get_username() if report.created_by else None,
            "summary": {"pass": report.passed, "fail": report.failed, "unknown": report.unknown},
            "findings": report.findings,
        },
        indent=2,
    )


def as_markdown(report: ComplianceReport) -> str:
    lines = [
        f"# {STANDARD} compliance report, {report.created_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"{report.passed} pass, {report.failed} fail, {report.unknown} unknown.",
        "",
        "| Requirement | Check | Status | Evidence | How to fix |",
        "| --- | --- | --- | --- | --- |",
    ]
    for finding in report.findings:
        cells = [
            finding["requirement"],
            finding["title"],
            SYMBOL.get(finding["status"], finding["status"]),
            finding["evidence"],
            finding.get("fix", "") or "—",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
