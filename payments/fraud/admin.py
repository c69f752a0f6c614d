"""The console's rule editor: compliance officers add rules and change them; a change is saved
by the service as the next version (the one edited is retired, never overwritten). Older
versions are read-only. The parameters are checked against the catalogue next to the field."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from audits.admin_mixins import AuditedAdmin

from ..core.errors import DomainError
from .checks import CATALOGUE, FraudRuleInvalid, validate_params
from .models import FraudRule
from .services import fraud_rule_change, fraud_rule_create


class FraudRuleForm(forms.ModelForm):
    change_note = forms.CharField(
        max_length=255,
        required=False,
        label="Why",
        help_text="kept with the version; required for a change",
    )

    class Meta:
        model = FraudRule
        fields = ["key", "name", "kind", "params", "score", "enabled"]
        help_texts = {
            "params": "JSON; "
            + "; ".join(f"{kind}: {', '.join(check.params)}" for kind, check in CATALOGUE.items())
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind") or (self.instance.kind if self.instance.pk else None)
        if kind and "params" in data:
            try:
                data["params"] = validate_params(kind, data["params"])
            except FraudRuleInvalid as exc:
                self.add_error("params", str(exc))
        if self.instance.pk and not (data.get("change_note") or "").strip():
            self.add_error("change_note", "Say why the rule changes.")
        return data


@admin.register(FraudRule)
class FraudRuleAdmin(AuditedAdmin):
    form = FraudRuleForm
    list_display = ["name", "key", "version", "kind", "score", "enabled", "is_current"]
    list_filter = ["is_current", "enabled", "kind"]
    list_select_related = ["created_by"]
    search_fields = ["=key", "name"]
    ordering = ["key", "-version"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["key", "name", "kind", "params", "score", "enabled", "change_note"]
        if not obj.is_current:
            return self.get_readonly_fields(request, obj)
        return ["key", "kind", "version", "name", "params", "score", "enabled", "change_note"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        fixed = ["key", "kind", "version", "is_current", "created_by", "created_at"]
        if obj.is_current:
            return ["key", "kind", "version"]
        return [*fixed, "name", "params", "score", "enabled", "change_note", "live_version"]

    @admin.display(description="Live version")
    def live_version(self, obj: FraudRule) -> str:
        live = FraudRule.objects.filter(key=obj.key, is_current=True).first()
        if live is None:
            return "-"
        url = reverse("admin:payments_fraudrule_change", args=[live.pk])
        return format_html('<a href="{}">{}</a>', url, live)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and not obj.is_current:
            return False  # an older version is history
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: FraudRule, form: Any, change: bool) -> None:
        data = form.cleaned_data
        actor = cast(User, request.user)  # the console serves signed-in staff only
        # What a new version may change, the same for a new rule.
        edited = {field: data[field] for field in ("name", "params", "score", "enabled")}
        try:
            if change:
                saved = fraud_rule_change(
                    rule=FraudRule.objects.get(pk=obj.pk),
                    **edited,
                    note=data["change_note"],
                    actor=actor,
                )
            else:
                saved = fraud_rule_create(
                    key=data["key"],
                    kind=data["kind"],
                    **edited,
                    note=data.get("change_note", ""),
                    actor=actor,
                )
        except DomainError as exc:
            # Refusals the form could not foresee (nothing changed, a race): shown, nothing
            # saved. The admin then reports success for the unchanged row; say what happened.
            self.message_user(request, str(exc), level="error")
            return
        obj.pk = saved.pk
        obj.refresh_from_db()
