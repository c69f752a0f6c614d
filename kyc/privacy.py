"""Data-subject rights for merchants' contact persons, found by their email (through the blind
indexes, as the columns are encrypted).

Access (GDPR art. 15): everything held about the person, in clear, for the compliance officer
who answers the request. A merchant's beneficial owners have no email: they are exported with
the merchant they own (its contact's export holds them).

Erasure (art. 17): the person's own data key is destroyed (crypto-shredding,
audits/crypto/subjects.py), so every copy of their data, both audit trails included, becomes
unreadable while every row and hash stays as it was; refused, with the reasons, while a legal
hold applies. Both are recorded in the security trail."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone

from audits import context, security
from audits.behaviour import staff_activity_record
from audits.crypto import subjects
from audits.crypto.envelope import blind_index_candidates
from audits.crypto.reveal import reveal_changes, reveal_state
from audits.models import PaymentAudit, StaffActivityKind, SubjectKey
from payments.core.errors import DomainError
from payments.models import Chargeback, Merchant, Payment
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
    staff_activity_record(user=actor, kind=StaffActivityKind.EXPORT)
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


class ErasureRefused(DomainError):
    """A legal hold keeps the person's data; the message names each hold."""

    http_status = 409
    error_type = "legal_hold"

    def __init__(self, holds: list[str]) -> None:
        super().__init__("Erasure refused: " + "; ".join(holds) + ".")
        self.holds = holds


class ErasureWithoutReason(DomainError):
    pass


@dataclass(frozen=True)
class Erasure:
    merchants: list[Merchant]
    keys_destroyed: int


def _lock_persons_keys(email: str) -> list[SubjectKey]:
    """The live keys, locked, of everyone who was a contact person with this email: the
    current contact of some merchants, a former one of others."""
    normalised = email.strip().lower()
    if not normalised:
        return []
    return list(
        SubjectKey.objects.select_for_update()
        .filter(
            scope=Merchant.CONTACT_SCOPE,
            email_index__in=blind_index_candidates(normalised),
            erased_at__isnull=True,
        )
        .order_by("created_at")
    )


def _merchant_pk(key: SubjectKey) -> int | None:
    return int(key.object_id) if key.object_id.isdigit() else None


def _newest(queryset: models.QuerySet[Any], field: str) -> datetime.datetime | None:
    value: datetime.datetime | None = queryset.aggregate(newest=models.Max(field))["newest"]
    return value


def legal_holds(merchant: Merchant, *, current_contact: bool) -> list[str]:
    """Why this merchant's contact person's data must still be kept; empty when nothing holds.
    Retention periods per record type are `settings.DATA_RETENTION_DAYS`."""
    holds = []
    if current_contact and merchant.status == Merchant.Status.ACTIVE:
        holds.append(
            f"{merchant} is active and this is its contact person: name a new contact first"
        )
    open_cases = KycCase.objects.filter(merchant=merchant).exclude(status__in=KycCase.DECIDED)
    if references := list(open_cases.values_list("reference", flat=True)[:3]):
        holds.append(f"{merchant} has an open KYC case ({', '.join(references)})")
    disputes = Chargeback.objects.filter(payment__merchant=merchant, status__in=Chargeback.OPEN)
    if count := disputes.count():
        holds.append(f"{merchant} has {count} open dispute{'s' if count > 1 else ''}")
    now = timezone.now()
    records: list[tuple[str, str, datetime.datetime | None]] = [
        (
            "kyc.kyccase",
            "KYC case",
            _newest(KycCase.objects.filter(merchant=merchant), "updated_at"),
        ),
        (
            "payments.payment",
            "payment",
            _newest(Payment.objects.filter(merchant=merchant), "created_at"),
        ),
        (
            "payments.chargeback",
            "dispute",
            _newest(Chargeback.objects.filter(payment__merchant=merchant), "updated_at"),
        ),
    ]
    for record_type, label, newest in records:
        if newest is None:
            continue
        kept_until = newest + datetime.timedelta(days=settings.DATA_RETENTION_DAYS[record_type])
        if kept_until > now:
            holds.append(
                f"{merchant}'s last {label} ({newest:%Y-%m-%d}) is kept until "
                f"{kept_until:%Y-%m-%d} ({record_type} retention)"
            )
    return holds


def subject_erase(*, email: str, actor: User | None, reason: str) -> Erasure:
    """Erase the contact person with this email wherever they are or were a contact: their
    keys are destroyed, the merchants' search index for them cleared. SubjectNotFound when no
    live key names them; ErasureRefused (nothing changed, the refusal recorded) while a hold
    applies."""
    reason = reason.strip()
    if not reason:
        raise ErasureWithoutReason("An erasure needs its reason (the request's reference).")
    with transaction.atomic(), context.acting(actor):
        keys = _lock_persons_keys(email)
        if not keys:
            raise SubjectNotFound("No contact person with this email, or already erased.")
        merchants = {
            m.pk: m
            for m in Merchant.objects.select_for_update().filter(
                pk__in=[_merchant_pk(key) for key in keys]
            )
        }
        holds = [
            hold
            for key in keys
            if (merchant := merchants.get(_merchant_pk(key) or 0)) is not None
            for hold in legal_holds(merchant, current_contact=merchant.contact_subject_id == key.pk)
        ]
        if not holds:
            return _destroy(keys, merchants, actor, reason)
    _record_refusal(merchants.values(), actor, reason, holds)
    raise ErasureRefused(holds)


def _record_refusal(merchants: Any, actor: User | None, reason: str, holds: list[str]) -> None:
    with transaction.atomic(), context.acting(actor):
        for merchant in merchants:
            security.record(
                action="privacy.erasure_refused",
                object_type=MERCHANT,
                object_id=merchant.pk,
                after={"request": reason, "holds": holds},
                actor_id=actor.pk if actor is not None else None,
            )


def _destroy(
    keys: list[SubjectKey], merchants: dict[int, Merchant], actor: User | None, reason: str
) -> Erasure:
    now = timezone.now()
    with transaction.atomic():  # within the caller's, which holds the locks
        SubjectKey.objects.filter(pk__in=[key.pk for key in keys]).update(
            wrapped_key=b"", erased_at=now, erased_by=actor, erasure_reason=reason
        )
        # Now, so that the merchants below read as erased; and again at commit, as another
        # thread of this process may have cached a key from the rows as they were until then.
        subjects.forget(key.pk for key in keys)
        transaction.on_commit(lambda: subjects.forget(key.pk for key in keys))
        for merchant in merchants.values():
            fresh = Merchant.objects.get(pk=merchant.pk)  # reads the erased values as such
            fresh.save(update_fields=["contact_email_index"])  # nobody finds them any more
            security.record(
                action="privacy.subject_erasure",
                object_type=MERCHANT,
                object_id=merchant.pk,
                after={
                    "request": reason,
                    "subject_keys": [str(k.pk) for k in keys if k.object_id == str(merchant.pk)],
                    "fields": list(Merchant.CONTACT_FIELDS),
                },
                actor_id=actor.pk if actor is not None else None,
            )
    return Erasure(merchants=list(merchants.values()), keys_destroyed=len(keys))
