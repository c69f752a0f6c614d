"""Staff are deactivated, never deleted: their audit rows must keep pointing at them."""

from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from django.db.models import ProtectedError

from .models import PaymentAudit


def audit_history_count(user: Any) -> int:
    return (
        LogEntry.objects.filter(actor_id=user.pk).count()
        + PaymentAudit.objects.filter(user_id=user.pk).count()
    )


def refusal_message(user: Any, count: int) -> str:
    return (
        f"User '{user}' has {count} audit trail entries and cannot be deleted: "
        f"deactivate the account instead (untick 'Active')."
    )


def refuse_deleting_user_with_history(sender: Any, instance: Any, **kwargs: Any) -> None:
    count = audit_history_count(instance)
    if count:
        raise ProtectedError(refusal_message(instance, count), set())
