from __future__ import annotations

from typing import Any

from auditlog.admin import LogEntryAdmin as UpstreamLogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpRequest
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode

from config.pagination import LargeTablePaginator

from .columns import AUDIT_ROW_COLUMNS
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


# A row's link carries its created_at: on PostgreSQL the lookup then reads the one partition of
# that month instead of every partition's primary-key index (the trail is partitioned by month).
CREATED_AT_PARAM = "created_at"


class AuditChangeList(ChangeList):
    def url_for_result(self, result: Model) -> str:
        assert isinstance(result, PaymentAudit)  # nosec B101 (this changelist lists audit rows)
        query = urlencode({CREATED_AT_PARAM: result.created_at.isoformat()})
        return f"{super().url_for_result(result)}?{query}"


@admin.register(PaymentAudit)
class PaymentAuditAdmin(ReadOnlyAdmin):
    list_display = AUDIT_ROW_COLUMNS
    list_select_related = ["user"]
    list_filter = [ObjectTypeFilter, "created_at"]
    search_fields = ["=object_id", "=ip_address", "=device_id", "=user__username", "action_type"]
    date_hierarchy = None
    readonly_fields = [f.name for f in PaymentAudit._meta.fields]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return AuditChangeList

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> PaymentAudit | None:
        """By id and created_at when the link gives it (one partition read); by id alone for
        a link without it or with a created_at that does not match (every partition read)."""
        try:
            moment = parse_datetime(request.GET.get(CREATED_AT_PARAM, ""))
        except ValueError:
            moment = None
        if from_field is None and moment is not None and moment.tzinfo is not None:
            row = self._pruned(request, object_id, moment)
            if row is not None:
                return row
        return super().get_object(request, object_id, from_field)

    def _pruned(self, request: HttpRequest, object_id: str, moment: Any) -> PaymentAudit | None:
        try:
            pk = PaymentAudit._meta.pk.to_python(object_id)
        except ValidationError:
            return None
        return self.get_queryset(request).filter(pk=pk, created_at=moment).first()


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
