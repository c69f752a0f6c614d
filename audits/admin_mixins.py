from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auditlog.mixins import AuditlogHistoryAdminMixin
from django.contrib import admin
from django.contrib.admin import helpers
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from config.pagination import LargeTablePaginator

from .masking import masked
from .models import PaymentAudit


class ConsoleAdmin(admin.ModelAdmin):
    """Defaults for every list in the console: no full-table COUNT(*), bounded pages."""

    paginator = LargeTablePaginator
    show_full_result_count = False
    list_per_page = 50

    def action_checkbox(self, obj: Any) -> SafeString:
        """Django's own checkbox, written directly: Django renders a form widget through the
        template engine on every row, most of a 50-row list's time at full size."""
        label = format_html(_("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )


class AuditedAdmin(AuditlogHistoryAdminMixin, ConsoleAdmin):
    """An audited model's page shows its payment_audits rows and links its full change log."""

    show_auditlog_history_link = False
    audit_trail_rows = 20

    @admin.display(description="Audit trail")
    def audit_trail(self, obj: Any) -> str:
        if obj is None or obj.pk is None:
            return "-"
        opts = obj._meta
        history_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_auditlog", args=[obj.pk])
        rows = list(
            PaymentAudit.objects.filter(object_type=opts.label_lower, object_id=str(obj.pk))
            .select_related("user")
            .order_by("-created_at")[: self.audit_trail_rows]
        )
        table = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    row.action_type,
                    row.user,
                    row.ip_address,
                    row.device_id or "",
                )
                for row in rows
            ),
        )
        listing = (
            format_html(
                "<table><tr><th>When (UTC)</th><th>Action</th><th>Who</th>"
                "<th>IP</th><th>Device</th></tr>{}</table>",
                table,
            )
            if rows
            else ""
        )
        return format_html(
            '{}<p><a href="{}">Full change log (field by field)</a></p>', listing, history_url
        )


class ReadOnlyInline(admin.TabularInline):
    """Rows shown under their parent as they are: none added, changed or deleted there. Each
    of `fields` is read only (name them one by one, no groups)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        return list(self.fields or ())

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class RecordAdmin(AuditedAdmin):
    """A record that only the services create and nobody deletes: the console reads it and
    runs the actions it offers."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


def masked_column(field: str) -> Callable[[Any, Any], str]:
    """A console column showing `field` masked (audits/masking.py), for a role that may not
    read it in clear."""

    @admin.display(description=field.replace("_", " "))
    def column(modeladmin: Any, obj: Any) -> str:
        return masked(field, getattr(obj, field))

    return column
