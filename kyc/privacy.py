"""Data-subject access (GDPR art. 15): everything held about a merchant's contact person,
gathered by their email (found through the blind index, as the column is encrypted), in clear,
for the compliance officer who answers the request. A merchant's beneficial owners have no
email: they are exported with the merchant they own (its contact's export holds them). Each
export is in the security trail.

Erasure (art. 17, by destroying the person's data key) is not built yet: values are encrypted
with a key per value, not per person (see the README, "Data-subject requests")."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audits import security
from audits.crypto.reveal import reveal_changes, reveal_state
from audits.models import PaymentAudit
from payments.models import Merchant
from payments.selectors import merchant_filter_contact_email

from .models import BeneficialOwner, CaseNote, KycCase, KycDocument, ScreeningResult
from .screening import screened_person_names

MERCHANT = "payments.merchant"
OWNER = "kyc.beneficialowner"
PERSONAL_FIELDS = [
    "contact_name",
    "contact_email",
    "contact_phone",
    "tax_id",
    "registration_number",
]


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
        "tax_id": merchant.tax_id,
        "registration_number": merchant.registration_number,
        "created_at": merchant.created_at.isoformat(),
    }


def _owners(merchant: Merchant) -> list[dict[str, Any]]:
    """The merchant's beneficial owners. An owner has no email to be found by: a request about
    an owner is answered with the export of the merchant they own."""
    return [
        {
            "id": owner.pk,
            "full_name": owner.full_name,
            "date_of_birth": owner.date_of_birth,
            "nationality": owner.nationality,
            "residential_address": owner.residential_address,
            "ownership_bp": owner.ownership_bp,
            "held": owner.held,
            "created_at": owner.created_at.isoformat(),
            "updated_at": owner.updated_at.isoformat(),
            "change_log": _change_log(owner, OWNER),
        }
        for owner in BeneficialOwner.objects.filter(merchant=merchant).order_by("pk")
    ]


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
    """Hits on the names of people: the contact person and the beneficial owners."""
    names = set(screened_person_names(merchant))
    if not names:
        return []
    return [
        {
            "screened_name": r.screened_name,
            "matched_name": r.matched_name,
            "list": r.list_name,
            "category": r.category,
            "disposition": r.disposition,
        }
        # The screened name is encrypted: compared once decrypted, not in SQL.
        for r in ScreeningResult.objects.filter(case__merchant=merchant).order_by("pk")
        if r.screened_name in names
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


def _change_log(record: Any, object_type: str = MERCHANT) -> list[dict[str, Any]]:
    from auditlog.models import LogEntry

    entries = LogEntry.objects.get_for_object(record).order_by("timestamp", "pk")
    return [
        {
            "at": entry.timestamp.isoformat(),
            "action": entry.get_action_display(),
            "changes": reveal_changes(object_type, entry.changes_dict),
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
    document = {
        "request": "GDPR art. 15 access",
        "subject": {"contact_email": email},
        "generated_at": timezone.now().isoformat(),
        "merchants": [
            {
                "merchant": _merchant(m),
                "beneficial_owners": _owners(m),
                "kyc_cases": _cases(m),
                "screening": _screening(m),
                "audit_trail": _audit_rows(m),
                "change_log": _change_log(m),
            }
            for m in merchants
        ],
    }
    owner_counts = {m.pk: BeneficialOwner.objects.filter(merchant=m).count() for m in merchants}
    with transaction.atomic():
        for merchant in merchants:
            security.record(
                action="privacy.subject_export",
                object_type=MERCHANT,
                object_id=merchant.pk,
                after={"fields": PERSONAL_FIELDS, "beneficial_owners": owner_counts[merchant.pk]},
                actor_id=actor.pk if actor is not None else None,
            )
    return document
