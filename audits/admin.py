from __future__ import annotations

from typing import Any

from auditlog.admin import LogEntryAdmin as UpstreamLogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from config.pagination import LargeTablePaginator

from .models import AuditChainHead, KnownDevice, PaymentAudit
from .security_admin import SafeUserChangeForm
from .users import audit_history_count, refusal_message


class ReadOnlyAdmin(admin.ModelAdmin):
    paginator = LargeTablePaginator
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ObjectTypeFilter(admin.SimpleListFilter):
    """Fixed choices: a plain field filter would SELECT DISTINCT over the whole trail."""

    title = "object type"
    parameter_name = "object_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("payments.merchant", "Merchant"),
            ("payments.payment", "Payment"),
            ("payments.refund", "Refund"),
            ("payments.chargeback", "Chargeback"),
            ("auth.user", "Staff user (security)"),
            ("auth.group", "Role (security)"),
        ]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(object_type=self.value()) if self.value() else queryset


@admin.register(PaymentAudit)
class PaymentAuditAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "action_type",
        "object_type",
        "object_id",
        "user",
        "ip_address",
        "device_id",
    ]
    list_select_related = ["user"]
    list_filter = [ObjectTypeFilter, "created_at"]
    search_fields = ["=object_id", "=ip_address", "=device_id", "=user__username", "action_type"]
    date_hierarchy = None
    readonly_fields = [f.name for f in PaymentAudit._meta.fields]


@admin.register(AuditChainHead)
class AuditChainHeadAdmin(ReadOnlyAdmin):
    list_display = ["chain", "seq", "last_hash"]


admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class LogEntryAdmin(UpstreamLogEntryAdmin):
    paginator = LargeTablePaginator
    show_full_result_count = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Staff with audit history cannot be deleted (their rows would lose their actor). The
    password is shown as set or not, never as (a summary of) its hash."""

    form = SafeUserChangeForm
    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_active"]

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        for user in objs:
            count = audit_history_count(user)
            if count:
                protected = [*protected, refusal_message(user, count)]
        return deleted, model_count, perms_needed, protected


@admin.register(KnownDevice)
class KnownDeviceAdmin(ReadOnlyAdmin):
    """The devices each staff person, API token and merchant was seen on: administrators read
    them here; a new staff device is also a `security.device_new` row of the person's trail."""

    list_display = ["subject", "__str__", "first_seen", "last_seen"]
    list_filter = ["first_seen"]
    search_fields = ["=subject", "=network"]
    readonly_fields = ["subject", "fingerprint", "network", "summary", "first_seen", "last_seen"]
