"""The PCI DSS v4.0.1 compliance report: live evidence checked against named requirements
(checks.py), kept with its date (ComplianceReport), shown at /audits/compliance/ and printed by
`manage.py compliance_report --format md|json` (report.py)."""
