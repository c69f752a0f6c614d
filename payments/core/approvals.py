"""Maker-checker, as one small component: request, approve, reject, expire.

The engine knows no action of its own. Each app declares its kinds (action, label, the
permission that decides it, what approving it does) in its own `approvals.py`, and
`settings.APPROVAL_KINDS` lists those declarations: payments (large refunds, accepting a
chargeback) and KYC (the four-eyes rule). The rules live here, in the services, not in the
screens: the requester cannot approve, whoever approves or rejects must hold the kind's
permission, a request expires, and two approvals racing on one request execute the action once
(the request row is locked and must still be pending).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from audits import context
from audits.behaviour import staff_activity_record
from audits.models import StaffActivityKind

from .errors import DomainError

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from payments.models import ApprovalRequest


@dataclass(frozen=True)
class ApprovalKind:
    action: str  # stored in ApprovalRequest.action
    label: str  # what people read in the inbox and the timelines
    permission: str  # approving and rejecting both need it
    # What approving does: called with the request and the approving actor, inside the approval's
    # transaction; its result is what approval_approve returns.
    execute: Callable[[ApprovalRequest, User], Any]
    # Where a person reads what the request is about (a URL name taking the target's id).
    target_url_name: str = ""


@cache
def approval_kinds() -> dict[str, ApprovalKind]:
    """Every kind the apps declare, by action (settings.APPROVAL_KINDS lists where)."""
    kinds: dict[str, ApprovalKind] = {}
    for path in settings.APPROVAL_KINDS:
        for kind in import_string(path):
            if kind.action in kinds:
                raise ValueError(f"Approval action '{kind.action}' is declared twice.")
            kinds[kind.action] = kind
    return kinds


def approval_kind(action: str) -> ApprovalKind:
    return approval_kinds()[action]


def _requests() -> type[ApprovalRequest]:
    # The model lives in payments.models, which imports the kernel: looked up, not imported.
    return apps.get_model("payments", "ApprovalRequest")


class ApprovalError(DomainError):
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
    http_status = 409

    def __init__(self) -> None:
        super().__init__("A request for this is already waiting for approval.")


def approval_request(
    *,
    action: str,
    target: models.Model,
    actor: User,
    payload: dict[str, Any] | None = None,
    reason: str = "",
    ttl: datetime.timedelta | None = None,
) -> ApprovalRequest:
    approval_kind(action)  # an action nobody declared is a programming error: KeyError
    Requests = _requests()
    ttl = ttl or datetime.timedelta(hours=settings.APPROVAL_TTL_HOURS)
    with transaction.atomic(), context.bind(actor=actor):
        target_type, target_id = target._meta.label_lower, str(target.pk)
        if Requests.objects.filter(
            action=action,
            target_type=target_type,
            target_id=target_id,
            status=Requests.Status.PENDING,
        ).exists():
            raise ApprovalAlreadyPending
        return Requests.objects.create(
            action=action,
            target_type=target_type,
            target_id=target_id,
            payload=payload or {},
            reason=reason,
            requested_by=actor,
            expires_at=timezone.now() + ttl,
        )


def _expire_if_due(request: ApprovalRequest) -> None:
    Requests = _requests()
    # Its own transaction: the expiry stays recorded although the decision is then refused.
    with transaction.atomic():
        request = Requests.objects.select_for_update().get(pk=request.pk)
        if request.status == Requests.Status.PENDING and request.expires_at <= timezone.now():
            request.status = Requests.Status.EXPIRED
            request.save()


def _lock_pending(request: ApprovalRequest) -> ApprovalRequest:
    _expire_if_due(request)
    request = _requests().objects.select_for_update().get(pk=request.pk)
    if request.status != request.Status.PENDING:
        raise ApprovalNotPending(request)
    return request


@contextlib.contextmanager
def _deciding(
    request: ApprovalRequest, actor: User, *, status: str, note: str, verb: str
) -> Iterator[tuple[ApprovalRequest, ApprovalKind]]:
    """Record a person's decision on a pending request; the block runs in its transaction."""
    kind = approval_kind(request.action)
    with context.bind(actor=actor):
        _expire_if_due(request)
    with transaction.atomic(), context.bind(actor=actor):
        request = _lock_pending(request)
        if request.requested_by_id == actor.pk:
            raise SelfApprovalRefused
        # Saying no is a decision too: it needs the same permission as saying yes.
        if not actor.has_perm(kind.permission):
            raise ApproverLacksPermission(kind.permission, verb=verb)
        request.status = status
        request.decided_by, request.decided_at = actor, timezone.now()
        request.decision_note = note
        request.save()
        yield request, kind


def approval_approve(*, request: ApprovalRequest, actor: User, note: str = "") -> Any:
    """Approve and execute. Returns what the kind's `execute` returns."""
    approved = request.Status.APPROVED
    with _deciding(request, actor, status=approved, note=note, verb="Approving") as decided:
        locked, kind = decided
        result = kind.execute(locked, actor)
        staff_activity_record(user=actor, kind=StaffActivityKind.APPROVAL)
        return result


def approval_reject(*, request: ApprovalRequest, actor: User, note: str) -> ApprovalRequest:
    if not note.strip():
        raise ApprovalError("Say why the request is rejected.")
    rejected = request.Status.REJECTED
    with _deciding(request, actor, status=rejected, note=note, verb="Rejecting") as decided:
        return decided[0]


def approval_void(*, request: ApprovalRequest, note: str) -> ApprovalRequest:
    """End a pending request because what it approved changed (no person decided it)."""
    Requests = _requests()
    with transaction.atomic():
        request = Requests.objects.select_for_update().get(pk=request.pk)
        if request.status == Requests.Status.PENDING:
            request.status = Requests.Status.REJECTED
            request.decided_at, request.decision_note = timezone.now(), note
            request.save()
        return request


def approvals_expire_due(*, now: datetime.datetime | None = None) -> int:
    Requests = _requests()
    now = now or timezone.now()
    expired = 0
    for request in Requests.objects.filter(status=Requests.Status.PENDING, expires_at__lte=now):
        with transaction.atomic():
            locked = Requests.objects.select_for_update().get(pk=request.pk)
            if locked.status == Requests.Status.PENDING:
                locked.status = Requests.Status.EXPIRED
                locked.save()
                expired += 1
    return expired
