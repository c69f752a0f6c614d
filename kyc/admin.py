from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from audits.admin_mixins import ReadOnlyInline, RecordAdmin, masked_column

from .models import BeneficialOwner, CaseNote, KycCase, KycDocument
from .selectors import sees_case_details


class KycDocumentInline(ReadOnlyInline):
    model = KycDocument
    # No file link: documents are downloaded through the audited review screens only.
    fields = [
        "document_type",
        "original_name",
        "content_type",
        "size",
        "sha256",
        "review_status",
        "uploaded_at",
    ]


class CaseNoteInline(ReadOnlyInline):
    model = CaseNote
    fields = ["author", "text", "created_at"]


OUTCOME_FIELDS = ["reference", "merchant", "kind", "status", "decision", "decided_at"]


@admin.register(KycCase)
class KycCaseAdmin(RecordAdmin):
    list_display = [
        "reference",
        "merchant",
        "kind",
        "status",
        "risk_level",
        "risk_score",
        "assignee",
        "due_at",
        "created_at",
    ]
    list_select_related = ["merchant", "assignee"]
    list_filter = ["status", "kind", "risk_level", "due_at", "created_at"]
    search_fields = ["=reference", "merchant__legal_name", "merchant__trading_name"]
    # No date hierarchy: on every page it reads MIN, MAX and the DISTINCT days, months or years
    # of created_at over every case (58 ms at 100,000 cases, growing with them). The created_at
    # filter offers the usual ranges without a query (as the audit trail's console list does).
    date_hierarchy = None
    inlines = [KycDocumentInline, CaseNoteInline]

    # The console only reads a case: the workflow (assignee, prepared by, due date, SLA pause,
    # screening, decision...) changes through the review services alone, for every role,
    # superusers included, so no change permission here (a forged POST is a 403).
    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields] + ["audit_trail"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if not sees_case_details(request.user):
            return OUTCOME_FIELDS
        return [f.name for f in self.model._meta.fields if f.name != "id"] + ["audit_trail"]

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return self.inlines if sees_case_details(request.user) else []

    def get_list_display(self, request: HttpRequest) -> list[Any] | tuple[Any, ...]:
        if not sees_case_details(request.user):
            return ["reference", "merchant", "kind", "status", "decision", "created_at"]
        return self.list_display

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def auditlog_history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> Any:
        # The field-by-field log carries risk factors and reasons: details, not the outcome.
        if not sees_case_details(request.user):
            raise PermissionDenied
        return super().auditlog_history_view(request, object_id, extra_context)

    def get_list_filter(self, request: HttpRequest) -> list[Any] | tuple[Any, ...]:
        if not sees_case_details(request.user):
            return ["status", "kind"]
        return self.list_filter


@admin.register(KycDocument)
class KycDocumentAdmin(RecordAdmin):
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # reviewed on the case screen, by its assignee

    list_display = [
        "id",
        "case",
        "document_type",
        "content_type",
        "size",
        "review_status",
        "uploaded_at",
    ]
    list_select_related = ["case"]
    list_filter = ["review_status", "document_type", "content_type"]
    search_fields = ["=case__reference", "=sha256"]
    exclude = ["file"]
    readonly_fields = [
        "case",
        "document_type",
        "original_name",
        "sha256",
        "size",
        "content_type",
        "review_status",
        "review_reason",
        "uploaded_by",
        "uploaded_at",
        "audit_trail",
    ]


@admin.register(CaseNote)
class CaseNoteAdmin(RecordAdmin):
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a note, once written, stays as written

    list_display = ["case", "author", "short_text", "created_at"]
    list_select_related = ["case", "author"]
    search_fields = ["=case__reference", "text"]
    readonly_fields = ["case", "author", "text", "created_at", "audit_trail"]

    @admin.display(description="Text")
    def short_text(self, obj: CaseNote) -> str:
        return obj.text[:80]


@admin.register(BeneficialOwner)
class BeneficialOwnerAdmin(RecordAdmin):
    """View-only: owners are added and edited on the KYC merchant screen (kyc.owners). Their
    personal data is masked for a role without payments.view_merchant_contact."""

    MASKED = {
        "full_name": "masked_full_name",
        "date_of_birth": "masked_date_of_birth",
        "nationality": "masked_nationality",
        "residential_address": "masked_residential_address",
    }

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    list_display = ["id", "merchant", "full_name", "ownership", "held", "updated_at"]
    list_select_related = ["merchant"]
    list_filter = ["held"]
    search_fields = ["=merchant__legal_name"]
    readonly_fields = [
        "merchant",
        "full_name",
        "date_of_birth",
        "nationality",
        "residential_address",
        "ownership",
        "held",
        "created_at",
        "updated_at",
        "audit_trail",
    ]
    fields = [*readonly_fields]

    def _sees_personal(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.view_merchant_contact")

    def _masking(self, request: HttpRequest, names: Any) -> list[str]:
        if self._sees_personal(request):
            return list(names)
        return [self.MASKED.get(name, name) for name in names]

    def get_list_display(self, request: HttpRequest) -> Any:
        return self._masking(request, super().get_list_display(request))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._masking(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._masking(request, super().get_readonly_fields(request, obj))

    masked_full_name = masked_column("full_name")
    masked_date_of_birth = masked_column("date_of_birth")
    masked_nationality = masked_column("nationality")
    masked_residential_address = masked_column("residential_address")

    @admin.display(description="ownership", ordering="ownership_bp")
    def ownership(self, obj: BeneficialOwner) -> str:
        return obj.ownership_percent
