"""Staff roles as groups, declared here and kept in sync by migrate.

A migration creates the groups; after every migrate (and every test flush) `sync_roles` gives
each group exactly the permissions listed here, so the code is the one place roles are defined.
Users are given roles in the console (Users -> Groups); console access also needs "staff status".
"""

from __future__ import annotations

from typing import Any

KYC_ANALYST = "KYC analyst"
COMPLIANCE_OFFICER = "Compliance officer"
PAYMENTS_OPERATIONS = "Payments operations"
AUDITOR = "Auditor"
ADMINISTRATOR = "Administrator"

AUDIT_MODELS = {("audits", "paymentaudit"), ("auditlog", "logentry"), ("audits", "auditchainhead")}

# Credential stores: who holds which password, role, second factor, session or token. An
# Auditor reads the business records and both audit trails (where every change to these is
# recorded), not the stores themselves.
CREDENTIAL_APPS = {"auth", "sessions", "otp_totp", "otp_static", "otp_email"}
CREDENTIAL_MODELS = {("payments", "apitoken")}


def is_credential_store(app_label: str, model: str) -> bool:
    return app_label in CREDENTIAL_APPS or (app_label, model) in CREDENTIAL_MODELS


_ANALYST = {
    "payments.view_merchant",
    "payments.view_merchant_contact",  # KYC works with the contact person; operations do not
    "kyc.view_kyccase",
    "kyc.change_kyccase",
    "kyc.view_kycdocument",
    "kyc.add_kycdocument",
    "kyc.change_kycdocument",
    "kyc.view_casenote",
    "kyc.add_casenote",
    "kyc.view_screeningresult",
    "kyc.download_kycdocument",
    "kyc.view_beneficialowner",
    "kyc.add_beneficialowner",
    "kyc.change_beneficialowner",
    # the merchant's payout account and its micro-deposits (masked; never the amounts)
    "payments.view_payoutaccount",
    "payments.view_microdeposit",
}

# The fraud review queue: analysts, compliance and operations work alerts and read the rules
# (with their measured precision); only compliance officers write rules.
_FRAUD_REVIEW = {
    "payments.view_fraudrule",
    "payments.view_fraudalert",
    "payments.review_fraudalert",
}

ROLE_PERMISSIONS: dict[str, set[str] | str] = {
    KYC_ANALYST: _ANALYST | _FRAUD_REVIEW,
    COMPLIANCE_OFFICER: _ANALYST
    | _FRAUD_REVIEW
    | {
        "payments.add_fraudrule",
        "payments.change_fraudrule",
        "kyc.decide_kyccase",
        "kyc.reassign_kyccase",
        "payments.erase_merchant_contact",  # answering erasure requests (GDPR art. 17)
        "payments.change_merchant",
        "payments.view_payment",
        "payments.view_refund",
        "payments.view_chargeback",
        "audits.view_paymentaudit",
        "auditlog.view_logentry",
        "audits.view_compliancereport",
        "audits.run_compliancereport",
    },
    PAYMENTS_OPERATIONS: {
        "payments.view_merchant",
        "payments.view_payment",
        "payments.change_payment",
        "payments.view_refund",
        "payments.add_refund",
        # maker-checker: any other member may approve what one of them requested
        "payments.view_approvalrequest",
        "payments.approve_refund",
        "payments.approve_chargeback_accept",
        "payments.view_chargeback",
        "payments.change_chargeback",
        "payments.view_webhookevent",
        "payments.change_webhookevent",
        "payments.view_payoutaccount",
        "payments.view_microdeposit",
        # a case's outcome, not its documents
        "kyc.view_kyccase",
    }
    | _FRAUD_REVIEW,
    AUDITOR: "every view permission except on credential stores, and reading KYC documents",
    ADMINISTRATOR: "every permission except changing or deleting audit rows",
}


def _wanted(role: str, all_permissions: list[Any]) -> list[Any]:
    spec = ROLE_PERMISSIONS[role]
    if role == AUDITOR:
        return [
            p
            for p in all_permissions
            if (p.codename.startswith("view_") or p.codename == "download_kycdocument")
            and not is_credential_store(p.content_type.app_label, p.content_type.model)
        ]
    if role == ADMINISTRATOR:
        return [
            p
            for p in all_permissions
            if not (
                (p.content_type.app_label, p.content_type.model) in AUDIT_MODELS
                and not p.codename.startswith("view_")
            )
        ]
    if not isinstance(spec, set):
        raise TypeError(f"role {role!r} needs an explicit permission set")
    return [p for p in all_permissions if f"{p.content_type.app_label}.{p.codename}" in spec]


def sync_roles(apps: Any) -> None:
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    all_permissions = list(permission_model.objects.select_related("content_type"))
    for role in ROLE_PERMISSIONS:
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set(_wanted(role, all_permissions))
