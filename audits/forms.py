from __future__ import annotations

from typing import Any

from django import forms

OBJECT_TYPES = [
    ("", "Any object"),
    ("payments.merchant", "Merchant"),
    ("payments.payment", "Payment"),
    ("payments.refund", "Refund"),
    ("payments.chargeback", "Chargeback"),
    ("auth.user", "Staff user (security trail)"),
    ("auth.group", "Role (security trail)"),
]


class AuditSearchForm(forms.Form):
    object_type = forms.ChoiceField(required=False, choices=OBJECT_TYPES, label="Object")
    object_id = forms.CharField(required=False, max_length=64, label="Object id")
    actor = forms.CharField(required=False, max_length=150, label="Actor (username)")
    action = forms.CharField(
        required=False,
        max_length=50,
        label="Action contains",
        help_text="e.g. refund.create, api., reconcile, security.",
    )
    ip_address = forms.GenericIPAddressField(required=False, label="IP address")
    device_id = forms.CharField(required=False, max_length=64, label="Device id")
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        super().clean()  # a Form's clean() fills and returns self.cleaned_data
        data = self.cleaned_data
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "Must not be before the start date.")
        return data
