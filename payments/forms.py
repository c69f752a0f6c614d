from __future__ import annotations

from typing import Any

from django import forms

from config.screens import letter_code_field

from .core.money import AmountError, parse_major
from .models import Gateway, Payment, Refund


class PaymentFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        label="Search",
        help_text="Payment id, gateway reference, customer email or merchant",
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *Payment.Status.choices]
    )
    gateway = forms.ChoiceField(required=False, choices=[("", "Any gateway"), *Gateway.choices])
    currency = letter_code_field(3, "EUR", required=False)
    created_from = forms.DateField(
        required=False, label="Created from", widget=forms.DateInput(attrs={"type": "date"})
    )
    created_to = forms.DateField(
        required=False, label="Created to", widget=forms.DateInput(attrs={"type": "date"})
    )
    amount_min = forms.IntegerField(required=False, min_value=0, label="Amount from (minor units)")
    amount_max = forms.IntegerField(required=False, min_value=0, label="Amount to (minor units)")

    def clean(self) -> dict[str, Any]:
        super().clean()  # a Form's clean() fills and returns self.cleaned_data
        data = self.cleaned_data
        if (
            data.get("created_from")
            and data.get("created_to")
            and data["created_from"] > data["created_to"]
        ):
            self.add_error("created_to", "Must not be before the start date.")
        if (
            data.get("amount_min") is not None
            and data.get("amount_max") is not None
            and data["amount_min"] > data["amount_max"]
        ):
            self.add_error("amount_max", "Must not be below the lower bound.")
        return data


class RefundForm(forms.Form):
    amount = forms.CharField(
        label="Amount to refund", help_text="In the payment's currency, e.g. 12.50"
    )
    reason = forms.ChoiceField(choices=Refund.Reason.choices)
    reason_detail = forms.CharField(
        required=False, label="Note", widget=forms.Textarea(attrs={"rows": 2})
    )
    confirm = forms.BooleanField(label="I have checked the amount and the customer")

    def __init__(self, *args: Any, payment: Payment, **kwargs: Any) -> None:
        self.payment = payment
        super().__init__(*args, **kwargs)

    def clean_amount(self) -> int:
        try:
            amount = parse_major(self.cleaned_data["amount"], self.payment.currency)
        except AmountError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if amount > self.payment.refundable_amount:
            raise forms.ValidationError("More than the refundable amount.")
        return amount


class EvidenceForm(forms.Form):
    text = forms.CharField(label="Evidence", widget=forms.Textarea(attrs={"rows": 14}))


class EvidenceUploadForm(forms.Form):
    file = forms.FileField(label="Add a document (PDF, PNG or JPEG, up to 10 MB)")


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(label="I confirm")


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 2}))
    confirm = forms.BooleanField(label="I confirm")


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject")], widget=forms.RadioSelect
    )
    note = forms.CharField(
        required=False, label="Note (required to reject)", widget=forms.Textarea(attrs={"rows": 2})
    )

    def clean(self) -> dict[str, Any]:
        super().clean()  # a Form's clean() fills and returns self.cleaned_data
        data = self.cleaned_data
        if data.get("decision") == "reject" and not (data.get("note") or "").strip():
            self.add_error("note", "Say why the request is rejected.")
        return data
