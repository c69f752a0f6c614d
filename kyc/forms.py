from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from config.screens import letter_code_field
from payments.models import RiskLevel

from .models import KycCase, OwnershipHeld, ScreeningResult
from .services import REJECTION_REASONS


class QueueFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search", help_text="Merchant name or case reference")
    risk = forms.ChoiceField(required=False, choices=[("", "Any risk"), *RiskLevel.choices])
    kind = forms.ChoiceField(required=False, choices=[("", "KYC and KYB"), *KycCase.Kind.choices])
    country = letter_code_field(2, "GB", required=False)
    older_than_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, label="Submitted more than (days) ago"
    )


class _Confirmed(forms.Form):
    seen_status = forms.CharField(widget=forms.HiddenInput)
    confirm = forms.BooleanField(label="I confirm")


class PlainActionForm(_Confirmed):
    pass


class MessageForm(_Confirmed):
    message = forms.CharField(
        label="What is missing (sent to the merchant)", widget=forms.Textarea(attrs={"rows": 3})
    )


class ReasonForm(_Confirmed):
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 2}))


class ApproveForm(_Confirmed):
    reason = forms.CharField(
        required=False, label="Note (optional)", widget=forms.Textarea(attrs={"rows": 2})
    )


class RejectForm(_Confirmed):
    reason_code = forms.ChoiceField(label="Reason", choices=list(REJECTION_REASONS.items()))
    reason_text = forms.CharField(
        required=False,
        label="Details (required for Other)",
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class NoteForm(forms.Form):
    text = forms.CharField(label="Note", widget=forms.Textarea(attrs={"rows": 3}))


class AssignForm(_Confirmed):
    assignee = forms.ModelChoiceField(
        label="Assign to",
        required=False,
        empty_label="Nobody (back to the queue)",
        queryset=get_user_model()
        .objects.filter(is_active=True, groups__name__in=["KYC analyst", "Compliance officer"])
        .distinct()
        .order_by("username"),
    )


class DocumentReviewForm(_Confirmed):
    document = forms.IntegerField(widget=forms.HiddenInput)
    review_status = forms.ChoiceField(
        label="Decision",
        choices=[
            ("accepted", "Accept"),
            ("rejected", "Reject"),
            ("reupload_requested", "Ask for a new upload"),
        ],
    )
    reason = forms.CharField(required=False, label="Reason (required unless accepting)")


class ScreeningDispositionForm(_Confirmed):
    result_pk: int | None = None  # the hit this form is for (its field ids name it too)

    result = forms.IntegerField(widget=forms.HiddenInput)
    disposition = forms.ChoiceField(
        label="Disposition",
        choices=[
            ("", "Choose…"),
            (ScreeningResult.Disposition.TRUE_MATCH, "True match"),
            (ScreeningResult.Disposition.FALSE_POSITIVE, "False positive"),
        ],
    )
    reason = forms.CharField(
        label="Reason",
        help_text="e.g. date of birth and nationality differ from the list entry",
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ErasureForm(forms.Form):
    reason = forms.CharField(
        label="Request reference and reason",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    confirm = forms.BooleanField(
        label="I understand the contact person's data becomes unreadable everywhere, for good"
    )


class BeneficialOwnerForm(forms.Form):
    """A beneficial owner's fields; kyc.owners checks them again (and the 100 % total)."""

    full_name = forms.CharField(label="Full name", max_length=200)
    date_of_birth = forms.DateField(
        label="Date of birth",
        help_text="YYYY-MM-DD",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    nationality = letter_code_field(
        2, "DE", label="Nationality", help_text="Two-letter country code, e.g. DE"
    )
    residential_address = forms.CharField(
        label="Residential address", max_length=300, widget=forms.Textarea(attrs={"rows": 2})
    )
    ownership_bp = forms.IntegerField(
        label="Ownership (basis points)",
        min_value=2_500,
        max_value=10_000,
        help_text="2500 = 25 % (the threshold), 10000 = 100 %",
    )
    held = forms.ChoiceField(label="Held", choices=OwnershipHeld.choices)
