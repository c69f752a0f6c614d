"""The console's view of sign-in failures and lockouts (django-axes' records), read-only, with
one way to lift a lockout: the audited action below. Deleting records by hand is not offered."""

from __future__ import annotations

from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .signin import lift_lockout


class AccessAttemptAdmin(admin.ModelAdmin):
    list_display = ("username", "ip_address", "failures_since_start", "attempt_time", "locked")
    list_filter = ("attempt_time",)
    search_fields = ("username", "ip_address")
    ordering = ("-attempt_time",)
    fields = ("username", "ip_address", "user_agent", "failures_since_start", "attempt_time")
    readonly_fields = fields
    actions = ["lift"]

    @admin.display(boolean=True, description="locked now")
    def locked(self, obj: AccessAttempt) -> bool:
        recent = timezone.now() - obj.attempt_time < settings.AXES_COOLOFF_TIME
        return recent and obj.failures_since_start >= settings.AXES_FAILURE_LIMIT

    @admin.action(description="Lift the lockout (account and address)", permissions=["lift"])
    def lift(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        cleared = lift_lockout(
            attempt_ids=list(queryset.values_list("pk", flat=True)), actor=request.user
        )
        self.message_user(
            request, f"Lockout lifted: {cleared} record(s) cleared.", messages.SUCCESS
        )

    def has_lift_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("axes.delete_accessattempt")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
