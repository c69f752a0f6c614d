"""Every write to a merchant: create, contact, status (activation only through an approved KYC
case), and the review flag.

Each service is one transaction, locks the rows it changes and binds the acting user (`actor=`)
into the audit context (no actor: the system user, with the context's source).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from django.db import transaction

from audits import context

from ..core.records import check_keywords, create_valid
from ..exceptions import MerchantStatusRefused
from ..models import Merchant

if TYPE_CHECKING:
    from django.contrib.auth.models import User


CONTACT_FIELDS = ("contact_name", "contact_email", "contact_phone")
# Encrypted like the contact and changed the same way (merchant_update_contact).
IDENTIFIER_FIELDS = ("tax_id", "registration_number")


class NewMerchant(TypedDict):
    legal_name: str
    country: str
    contact_email: str


class MerchantDetails(NewMerchant, total=False):
    """Left out: "" (risk_level: the model's default, medium)."""

    trading_name: str
    contact_name: str
    contact_phone: str
    risk_level: str
    tax_id: str
    registration_number: str


def merchant_create(*, actor: User | None = None, **fields: Unpack[MerchantDetails]) -> Merchant:
    check_keywords(fields, MerchantDetails)
    with transaction.atomic(), context.acting(actor):
        merchant = Merchant(**fields)
        merchant.country = merchant.country.upper()
        merchant.tax_id = merchant.tax_id.strip()
        merchant.registration_number = merchant.registration_number.strip()
        return create_valid(merchant)


def merchant_update_contact(
    *, merchant: Merchant, actor: User | None = None, **contact: str
) -> Merchant:
    unknown = set(contact) - set(CONTACT_FIELDS) - set(IDENTIFIER_FIELDS)
    if unknown:
        raise ValueError(f"not contact fields or identifiers: {sorted(unknown)}")
    with transaction.atomic(), context.acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        for name, value in contact.items():
            setattr(merchant, name, value)
        merchant.full_clean()
        merchant.save()
        return merchant


# The KYC case model, named by label: payments never imports kyc, yet checks the proof it is
# handed (an approved case of this very merchant, read again from the database).
KYC_CASE_LABEL = "kyc.kyccase"


REACTIVATE_PERMISSION = "payments.change_merchant"


def _reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise MerchantStatusRefused(f"Give a reason to {what}.")
    return reason[:200]


def merchant_set_status(
    *, merchant: Merchant, status: str, reason: str = "", actor: User | None = None
) -> Merchant:
    """Every status change but the first activation, which only an approved KYC case gives
    (merchant_activate_after_kyc). Suspending keeps its reason on the merchant; re-activating
    a suspended merchant needs a reason and a person holding REACTIVATE_PERMISSION."""
    with transaction.atomic(), context.acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        if status == Merchant.Status.ACTIVE:
            if merchant.status == Merchant.Status.PENDING:
                raise MerchantStatusRefused(
                    f"{merchant} becomes active only when its KYC case is approved."
                )
            if merchant.status == Merchant.Status.SUSPENDED:
                if actor is None or not actor.has_perm(REACTIVATE_PERMISSION):
                    raise MerchantStatusRefused(
                        f"Re-activating {merchant} needs the permission '{REACTIVATE_PERMISSION}'."
                    )
                reason = _reason(reason, f"re-activate {merchant}")
                merchant.flagged_for_review = False
                merchant.flag_reason = f"re-activated: {reason}"
        elif status == Merchant.Status.SUSPENDED:
            reason = _reason(reason, f"suspend {merchant}")
            merchant.flagged_for_review, merchant.flag_reason = True, f"suspended: {reason}"
        merchant.transition_to(status)
        merchant.save()
        return merchant


def merchant_activate_after_kyc(
    *, merchant: Merchant, approved_case: Any, actor: User | None = None
) -> Merchant:
    """Activate a pending (or re-activate a suspended) merchant on the strength of an approved
    KYC case, called by the KYC decision inside its transaction."""
    with transaction.atomic(), context.acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        if getattr(approved_case, "_meta", None) is None or (
            approved_case._meta.label_lower != KYC_CASE_LABEL
        ):
            raise MerchantStatusRefused("Activation needs an approved KYC case as proof.")
        case = type(approved_case).objects.filter(pk=approved_case.pk).first()
        if case is None or case.merchant_id != merchant.pk or case.status != "approved":
            raise MerchantStatusRefused(
                f"{merchant} becomes active only when its own KYC case is approved."
            )
        if merchant.status == Merchant.Status.SUSPENDED:
            merchant.flagged_for_review = False
            merchant.flag_reason = f"re-activated: KYC case {case.reference} approved"
        merchant.transition_to(Merchant.Status.ACTIVE)
        merchant.save()
        return merchant


def merchant_flag_for_review(
    *, merchant: Merchant, reason: str, actor: User | None = None
) -> Merchant:
    with transaction.atomic(), context.acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        if merchant.flagged_for_review and merchant.flag_reason == reason:
            return merchant
        merchant.flagged_for_review, merchant.flag_reason = True, reason[:255]
        merchant.save()
        return merchant
