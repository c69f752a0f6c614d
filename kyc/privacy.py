"""Data-subject access (GDPR art. 15): everything held about a merchant's contact person,
gathered by their email (found through the blind index, as the column is encrypted), in clear,
for the compliance officer who answers the request. Each export is in the security trail.

Erasure (art. 17, by destroying the person's data key) is not built yet: values are encrypted
with a key per value, not per person (see the README, "Data-subject requests")."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audits import security
from audits.behaviour import staff_activity_record
from audits.crypto.reveal import reveal_changes, reveal_state
from audits.models import PaymentAudit, StaffActivityKind
from payments.models import Merchant
from payments.selectors import merchant_filter_contact_email

from .models import CaseNote, KycCase, KycDocument, ScreeningResult

MERCHANT = "payments.merchant"


class SubjectNotFound(Exception):
    pass


def _merchant(merchant: Merchant) -> dict[str, Any]:
    return {
        "id": merchant.pk,
        "legal_name": merchant.legal_name,
        "trading_name": merchant.trading_name,
        "country": merchant.country,
        "status": merchant.status,
        "contact_name": merchant.contact_name,
        "contact_email": merchant.contact_email,
        "contact_phone": merchant.contact_phone,
        "created_at": merchant.created_at.isoformat(),
    }


def _cases(merchant: Merchant) -> list[dict[str, Any]]:
    cases = KycCase.objects.filter(merchant=merchant).order_by("pk")
    documents = KycDocument.objects.filter(case__in=cases).order_by("pk")
    notes = CaseNote.objects.filter(case__in=cases).order_by("pk")
    return [
        {
            "reference": case.reference,
            "kind": case.kind,
            "status": case.status,
            "decision": case.decision,
            "created_at": case.created_at.isoformat(),
            "documents": [
                {
                    "type": d.document_type,
                    "name": d.original_name,
                    "sha256": d.sha256,
                    "review_status": d.review_status,
                    "uploaded_at": d.uploaded_at.isoformat(),
                }
                for d in documents
                if d.case_id == case.pk
            ],
            "notes": [
                {"text": n.text, "created_at": n.created_at.isoformat()}
                for n in notes
                if n.case_id == case.pk
            ],
        }
        for case in cases
    ]


def _screening(merchant: Merchant) -> list[dict[str, Any]]:
    if not merchant.contact_name:
        return []
    return [
        {
            "screened_name": r.screened_name,
            "matched_name": r.matched_name,
            "list": r.list_name,
            "category": r.category,
            "disposition": r.disposition,
        }
        for r in ScreeningResult.objects.filter(
            case__merchant=merchant, screened_name=merchant.contact_name
        ).order_by("pk")
    ]


def _audit_rows(merchant: Merchant) -> list[dict[str, Any]]:
    rows = PaymentAudit.objects.filter(object_type=MERCHANT, object_id=str(merchant.pk))
    return [
        {
            "at": row.created_at.isoformat(),
            "action": row.action_type,
            "before": reveal_state(MERCHANT, row.before_state),
            "after": reveal_state(MERCHANT, row.after_state),
        }
        for row in rows.order_by("created_at", "seq")
    ]


def _change_log(merchant: Merchant) -> list[dict[str, Any]]:
    from auditlog.models import LogEntry

    entries = LogEntry.objects.get_for_object(merchant).order_by("timestamp", "pk")
    return [
        {
            "at": entry.timestamp.isoformat(),
            "action": entry.get_action_display(),
            "changes": reveal_changes(MERCHANT, entry.changes_dict),
        }
        for entry in entries
    ]


def subject_data_export(*, email: str, actor: User | None) -> dict[str, Any]:
    """Everything held about the contact person with this email. SubjectNotFound when no
    merchant names them; the export itself is recorded in the security trail."""
    email = email.strip()
    merchants = list(merchant_filter_contact_email(Merchant.objects.all(), email).order_by("pk"))
    if not email or not merchants:
        raise SubjectNotFound("No merchant has a contact person with this email.")
    staff_activity_record(user=actor, kind=StaffActivityKind.EXPORT)
    document = {
        "request": "GDPR art. 15 access",
        "subject": {"contact_email": email},
        "generated_at": timezone.now().isoformat(),
        "merchants": [
            {
                "merchant": _merchant(m),
                "kyc_cases": _cases(m),
                "screening": _screening(m),
                "audit_trail": _audit_rows(m),
                "change_log": _change_log(m),
            }
            for m in merchants
        ],
    }
    with transaction.atomic():
        for merchant in merchants:
            security.record(
                action="privacy.subject_export",
                object_type=MERCHANT,
                object_id=merchant.pk,
                after={"fields": ["contact_name", "contact_email", "contact_phone"]},
                actor_id=actor.pk if actor is not None else None,
            )
    return document
