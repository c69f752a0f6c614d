from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audits.admin_mixins import RecordAdmin

from .models import CaseNote, KycCase, KycDocument


class KycDocumentInline(admin.TabularInline):
    model = KycDocument
    extra = 0
    can_delete = False
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
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CaseNoteInline(admin.TabularInline):
    model = CaseNote
    extra = 0
    can_delete = False
    fields = ["author", "text", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
    list_filter = ["status", "kind", "risk_level", "due_at"]
    search_fields = ["=reference", "merchant__legal_name", "merchant__trading_name"]
    date_hierarchy = "created_at"
    raw_id_fields = ["merchant", "assignee"]
    # The workflow (status, decision) changes only through the review services.
    readonly_fields = [
        "reference",
        "merchant",
        "kind",
        "status",
        "risk_level",
        "risk_score",
        "submitted_at",
        "decision",
        "decided_by",
        "decided_at",
        "decision_reason",
        "created_at",
        "updated_at",
        "audit_trail",
    ]
    inlines = [KycDocumentInline, CaseNoteInline]


@admin.register(KycDocument)
class KycDocumentAdmin(RecordAdmin):
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
    list_display = ["case", "author", "short_text", "created_at"]
    list_select_related = ["case", "author"]
    search_fields = ["=case__reference", "text"]
    readonly_fields = ["case", "author", "text", "created_at", "audit_trail"]

    @admin.display(description="Text")
    def short_text(self, obj: CaseNote) -> str:
        return obj.text[:80]
