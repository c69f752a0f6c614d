"""Maker-checker, as one small component: request, approve, reject, expire.

Used by payments (large refunds, accepting a chargeback) and by KYC (the four-eyes rule). The
rules live here, in the services, not in the screens: the requester cannot approve, whoever
approves or rejects must hold the action's permission, a request expires, and two approvals
racing on one request execute the action once (the request row is locked and must still be
pending).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from audits import context

from .exceptions import PaymentsError
from .models import ApprovalRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User


PERMISSIONS = {
    ApprovalRequest.Action.REFUND: "payments.approve_refund",
    ApprovalRequest.Action.CHARGEBACK_ACCEPT: "payments.approve_chargeback_accept",
    ApprovalRequest.Action.KYC_APPROVE: "kyc.decide_kyccase",
}

Executor = Callable[[ApprovalRequest, Any], Any]
_executors: dict[str, Executor] = {}


class ApprovalError(PaymentsError):
    pass


class SelfApprovalRefused(ApprovalError):
    def __init__(self) -> None:
        super().__init__("You requested this; a second person must approve it.")


class ApproverLacksPermission(ApprovalError):
    def __init__(self, permission: str, verb: str = "Approving") -> None:
        super().__init__(f"{verb} this needs the permission '{permission}'.")


class ApprovalNotPending(ApprovalError):
    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__(f"This request is already {request.status}.")


class ApprovalAlreadyPending(ApprovalError):
    def __init__(self) -> None:
        super().__init__("A request for this is already waiting for approval.")


def register_executor(action: str, executor: Executor) -> None:
    """What approving `action` does: called with the request and the approver, inside the
    approval's transaction."""
    _executors[action] = executor


def approval_request(
    *,
    action: str,
    target: models.Model,
    requested_by: User,
    payload: dict[str, Any] | None = None,
    reason: str = "",
    ttl: datetime.timedelta | None = None,
) -> ApprovalRequest:
    ttl = ttl or datetime.timedelta(hours=settings.APPROVAL_TTL_HOURS)
    with transaction.atomic(), context.bind(actor=requested_by):
        target_type, target_id = target._meta.label_lower, str(target.pk)
        if ApprovalRequest.objects.filter(
            action=action,
            target_type=target_type,
            target_id=target_id,
            status=ApprovalRequest.Status.PENDING,
        ).exists():
            raise ApprovalAlreadyPending
        return ApprovalRequest.objects.create(
            action=action,
            target_type=target_type,
            target_id=target_id,
            payload=payload or {},
            reason=reason,
            requested_by=requested_by,
            expires_at=timezone.now() + ttl,
        )


def _expire_if_due(request: ApprovalRequest) -> None:
    # Its own transaction: the expiry stays recorded although the decision is then refused.
    with transaction.atomic():
        request = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
        if (
            request.status == ApprovalRequest.Status.PENDING
            and request.expires_at <= timezone.now()
        ):
            request.status = ApprovalRequest.Status.EXPIRED
            request.save()


def _lock_pending(request: ApprovalRequest) -> ApprovalRequest:
    _expire_if_due(request)
    request = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
    if request.status != ApprovalRequest.Status.PENDING:
        raise ApprovalNotPending(request)
    return request


def approval_approve(*, request: ApprovalRequest, approver: User, note: str = "") -> Any:
    """Approve and execute. Returns what the action's executor returns."""
    permission = PERMISSIONS[ApprovalRequest.Action(request.action)]
    with context.bind(actor=approver):
        _expire_if_due(request)
    with transaction.atomic(), context.bind(actor=approver):
        request = _lock_pending(request)
        if request.requested_by_id == approver.pk:
            raise SelfApprovalRefused
        if not approver.has_perm(permission):
            raise ApproverLacksPermission(permission)
        request.status = ApprovalRequest.Status.APPROVED
        request.decided_by, request.decided_at = approver, timezone.now()
        request.decision_note = note
        request.save()
        return _executors[request.action](request, approver)


def approval_reject(*, request: ApprovalRequest, approver: User, note: str) -> ApprovalRequest:
    if not note.strip():
        raise ApprovalError("Say why the request is rejected.")
    with context.bind(actor=approver):
        _expire_if_due(request)
    with transaction.atomic(), context.bind(actor=approver):
        request = _lock_pending(request)
        if request.requested_by_id == approver.pk:
            raise SelfApprovalRefused
        # Saying no is a decision too: it needs the same permission as saying yes.
        permission = PERMISSIONS[ApprovalRequest.Action(request.action)]
        if not approver.has_perm(permission):
            raise ApproverLacksPermission(permission, verb="Rejecting")
        request.status = ApprovalRequest.Status.REJECTED
        request.decided_by, request.decided_at = approver, timezone.now()
        request.decision_note = note
        request.save()
        return request


def approval_void(*, request: ApprovalRequest, note: str) -> ApprovalRequest:
    """End a pending request because what it approved changed (no person decided it)."""
    with transaction.atomic():
        request = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
        if request.status == ApprovalRequest.Status.PENDING:
            request.status = ApprovalRequest.Status.REJECTED
            request.decided_at, request.decision_note = timezone.now(), note
            request.save()
        return request


def approvals_expire_due(*, now: datetime.datetime | None = None) -> int:
    now = now or timezone.now()
    expired = 0
    for request in ApprovalRequest.objects.filter(
        status=ApprovalRequest.Status.PENDING, expires_at__lte=now
    ):
        with transaction.atomic():
            locked = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
            if locked.status == ApprovalRequest.Status.PENDING:
                locked.status = ApprovalRequest.Status.EXPIRED
                locked.save()
                expired += 1
    return expired
