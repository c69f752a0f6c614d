"""Beneficial owners (KYB): the people owning at least 25 % of a merchant. Added and edited only
here, each write one transaction that locks the merchant (so two owners added at once cannot
together pass 100 %), checks who acts and every field, and is audited with its actor; like a
document, a change voids a first approval of the merchant's open case. Their personal data is
encrypted at rest (kyc.models.BeneficialOwner)."""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from audits import context
from payments.models import Merchant

from .exceptions import KycError, NotAllowed
from .models import OWNERSHIP_THRESHOLD_BP, WHOLE_BP, BeneficialOwner, OwnershipHeld
from .services import kyc_merchant_owners_changed

if TYPE_CHECKING:
    from django.contrib.auth.models import User

COUNTRY = re.compile(r"^[A-Z]{2}$")
OLDEST_YEARS = 120


class InvalidOwner(KycError):
    """A beneficial owner's field is missing or wrong; `errors` names each field."""

    http_status = 400

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(" ".join(errors.values()))


def _require(actor: User | None, permission: str) -> None:
    """Staff need the permission. A merchant's integration account (no role, not staff) adds
    its own owners through the API, which binds it to its merchant and checks its scope."""
    if actor is not None and actor.is_staff and not actor.has_perm(permission):
        raise NotAllowed(f"This needs the permission '{permission}'.")


def _date_of_birth(value: Any, errors: dict[str, str]) -> str:
    if isinstance(value, datetime.datetime):
        value = value.date()
    if not isinstance(value, datetime.date):
        try:
            value = datetime.date.fromisoformat(str(value or "").strip())
        except ValueError:
            errors["date_of_birth"] = "Give the date of birth as YYYY-MM-DD."
            return ""
    today = timezone.localdate()
    if value > today:
        errors["date_of_birth"] = "The date of birth is in the future."
    elif value.year < today.year - OLDEST_YEARS:
        errors["date_of_birth"] = f"The date of birth is more than {OLDEST_YEARS} years ago."
    return value.isoformat()


def _cleaned(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The fields given, normalised, and an error per field that is wrong."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name, limit in (("full_name", 200), ("residential_address", 300)):
        if name in fields:
            text = " ".join(str(fields[name] or "").split())
            if not text:
                errors[name] = f"Give the owner's {name.replace('_', ' ')}."
            elif len(text) > limit:
                errors[name] = f"At most {limit} characters."
            clean[name] = text
    if "date_of_birth" in fields:
        clean["date_of_birth"] = _date_of_birth(fields["date_of_birth"], errors)
    if "nationality" in fields:
        code = str(fields["nationality"] or "").strip().upper()
        if not COUNTRY.match(code):
            errors["nationality"] = "Give the nationality as a two-letter country code, e.g. DE."
        clean["nationality"] = code
    if "ownership_bp" in fields:
        try:
            share = int(fields["ownership_bp"])
            if isinstance(fields["ownership_bp"], bool | float):
                raise ValueError
        except (TypeError, ValueError):
            errors["ownership_bp"] = "Give the ownership in basis points, e.g. 2500 for 25 %."
        else:
            if not OWNERSHIP_THRESHOLD_BP <= share <= WHOLE_BP:
                errors["ownership_bp"] = (
                    "A beneficial owner holds from 25 % (2500 basis points) to 100 % (10000)."
                )
            clean["ownership_bp"] = share
    if "held" in fields:
        if fields["held"] not in OwnershipHeld.values:
            errors["held"] = f"Held must be one of: {', '.join(OwnershipHeld.values)}."
        clean["held"] = fields["held"]
    return clean, errors


def _check_total(merchant: Merchant, share: int, *, other_than: int | None = None) -> None:
    owners = BeneficialOwner.objects.filter(merchant=merchant)
    if other_than is not None:
        owners = owners.exclude(pk=other_than)
    held = owners.aggregate(total=Sum("ownership_bp"))["total"] or 0
    if held + share > WHOLE_BP:
        raise InvalidOwner(
            {
                "ownership_bp": f"The owners would hold {(held + share) / 100:g} % together; "
                f"the others already hold {held / 100:g} %."
            }
        )


REQUIRED = ("full_name", "date_of_birth", "nationality", "residential_address", "ownership_bp")


def beneficial_owner_add(
    *,
    merchant: Merchant,
    full_name: str,
    date_of_birth: Any,
    nationality: str,
    residential_address: str,
    ownership_bp: Any,
    held: str = OwnershipHeld.DIRECTLY,
    actor: User | None,
) -> BeneficialOwner:
    _require(actor, "kyc.add_beneficialowner")
    clean, errors = _cleaned(
        {
            "full_name": full_name,
            "date_of_birth": date_of_birth,
            "nationality": nationality,
            "residential_address": residential_address,
            "ownership_bp": ownership_bp,
            "held": held,
        }
    )
    if errors:
        raise InvalidOwner(errors)
    with transaction.atomic(), context.acting(actor):
        merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
        _check_total(merchant, clean["ownership_bp"])
        owner = BeneficialOwner(merchant=merchant, **clean)
        owner.full_clean()
        owner.save()
        kyc_merchant_owners_changed(merchant=merchant)
        return owner


def beneficial_owner_update(
    *, owner: BeneficialOwner, actor: User | None, **fields: Any
) -> BeneficialOwner:
    """Change some of an owner's fields (those given); the others stay."""
    _require(actor, "kyc.change_beneficialowner")
    unknown = sorted(set(fields) - {*REQUIRED, "held"})
    if unknown:
        raise InvalidOwner({name: "Not a field of a beneficial owner." for name in unknown})
    clean, errors = _cleaned(fields)
    if errors:
        raise InvalidOwner(errors)
    with transaction.atomic(), context.acting(actor):
        Merchant.objects.select_for_update().get(pk=owner.merchant_id)
        owner = BeneficialOwner.objects.select_for_update().get(pk=owner.pk)
        if "ownership_bp" in clean:
            _check_total(owner.merchant, clean["ownership_bp"], other_than=owner.pk)
        for name, value in clean.items():
            setattr(owner, name, value)
        owner.full_clean()
        owner.save()
        kyc_merchant_owners_changed(merchant=owner.merchant)
        return owner
