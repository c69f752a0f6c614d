from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.models import User

from .checks import FraudRuleInvalid, validate_params
from .models import AlertStatus, FraudRule


class RuleEditForm(forms.Form):
    """A rule's next version (or a dry run of it): the kind stays, the rest may change."""

    name = forms.CharField(max_length=120)
    params = forms.CharField(
        label="Parameters (JSON)",
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="the check's parameters; the catalogue below lists what each kind takes",
    )
    score = forms.IntegerField(min_value=1, max_value=100, help_text="1-100, added when it fires")
    enabled = forms.BooleanField(required=False)
    note = forms.CharField(
        max_length=255, required=False, label="Why (kept with the version; required to save)"
    )

    def __init__(self, *args: Any, rule: FraudRule, **kwargs: Any) -> None:
        self.rule = rule
        kwargs.setdefault(
            "initial",
            {
                "name": rule.name,
                "params": json.dumps(rule.params, indent=2, sort_keys=True),
                "score": rule.score,
                "enabled": rule.enabled,
            },
        )
        super().__init__(*args, **kwargs)

    def clean_params(self) -> dict[str, Any]:
        try:
            params = json.loads(self.cleaned_data["params"])
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from exc
        try:
            return validate_params(self.rule.kind, params)
        except FraudRuleInvalid as exc:
            raise forms.ValidationError(str(exc)) from exc


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(
        queryset=User.objects.none(), required=False, empty_label="nobody", label="Assign to"
    )

    def __init__(self, *args: Any, reviewers: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = reviewers  # type: ignore[attr-defined]


class NoteForm(forms.Form):
    text = forms.CharField(label="Note", widget=forms.Textarea(attrs={"rows": 2}))


class CloseForm(forms.Form):
    outcome = forms.ChoiceField(
        choices=[
            (AlertStatus.FRAUD, "Fraud"),
            (AlertStatus.FALSE_POSITIVE, "False positive"),
        ],
        widget=forms.RadioSelect,
        label="Outcome",
    )
    note = forms.CharField(label="Why", widget=forms.Textarea(attrs={"rows": 2}))
