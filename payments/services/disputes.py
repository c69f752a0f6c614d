"""Chargebacks (disputes): recorded and settled from the gateway's reports, assigned, answered
with evidence or accepted (with a second person), and the daily review of due dates and each
merchant's chargeback ratio.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, cast

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from audits import context

from ..core.records import check_keywords, create_valid
from ..exceptions import PaymentsError
from ..models import (
    ApprovalRequest,
    Chargeback,
    ChargebackEvidence,
    EvidenceFile,
    Merchant,
    Payment,
)
from .gateway_reports import is_newer, is_stale, payment_locked
from .merchants import merchant_flag_for_review

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _new_chargeback(payment: Payment, **fields: Any) -> Chargeback:
    """A dispute on `payment`, in its gateway and currency."""
    return create_valid(
        Chargeback(payment=payment, gateway=payment.gateway, currency=payment.currency, **fields)
    )


class _DisputeNamed(TypedDict):
    gateway_reference: str
    reason: str
    amount: int


class DisputeReport(_DisputeNamed, total=False):
    """A dispute as its gateway reports it, whether recorded by hand or from the gateway."""

    evidence_due_by: Any  # a date; left out or None: not known


def chargeback_record(
    *, payment: Payment, actor: User | None = None, **report: Unpack[DisputeReport]
) -> Chargeback:
    check_keywords(report, DisputeReport)
    with transaction.atomic(), context.acting(actor):
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        return _new_chargeback(payment, **report)


def chargeback_set_status(
    *, chargeback: Chargeback, status: str, actor: User | None = None
) -> Chargeback:
    with transaction.atomic(), context.acting(actor):
        chargeback = Chargeback.objects.select_for_update().get(pk=chargeback.pk)
        chargeback.transition_to(status)
        chargeback.save()
        return chargeback


def chargeback_apply_gateway_state(
    *, payment: Payment, status: str, event_at: Any = None, **report: Unpack[DisputeReport]
) -> Chargeback:
    check_keywords(report, DisputeReport)
    with transaction.atomic():
        payment = payment_locked(payment.pk)
        chargeback = (
            Chargeback.objects.select_for_update()
            .filter(gateway=payment.gateway, gateway_reference=report["gateway_reference"])
            .first()
        )
        if chargeback is None:
            return _new_chargeback(payment, status=status, gateway_event_at=event_at, **report)
        if is_stale(chargeback.gateway_event_at, event_at):
            return chargeback
        amount, evidence_due_by = report["amount"], report.get("evidence_due_by")
        changed = False
        if evidence_due_by is not None and chargeback.evidence_due_by != evidence_due_by:
            chargeback.evidence_due_by, changed = evidence_due_by, True
        if amount > 0 and chargeback.amount != amount:
            chargeback.amount, changed = amount, True
        if chargeback.status != status and status in chargeback.allowed_targets(chargeback.status):
            chargeback.transition_to(status)
            changed = True
        if is_newer(chargeback.gateway_event_at, event_at):
            chargeback.gateway_event_at, changed = event_at, True
        if changed:
            chargeback.full_clean()
            chargeback.save()
        return chargeback


CHARGEBACK_ACCEPT_APPROVAL = "chargeback_accept"


def chargeback_accept_request(
    *, chargeback: Chargeback, reason: str, actor: User
) -> ApprovalRequest:
    """Accepting a chargeback gives the money up: one person asks, a second one approves."""
    from ..core import approvals

    chargeback.check_transition(current=chargeback.status, target=Chargeback.Status.ACCEPTED)
    return approvals.approval_request(
        action=CHARGEBACK_ACCEPT_APPROVAL,
        target=chargeback,
        actor=actor,
        reason=reason,
    )


def chargeback_execute_accept(request: ApprovalRequest, actor: User) -> Chargeback:
    """What approving a CHARGEBACK_ACCEPT_APPROVAL request does (payments/approvals.py)."""
    from ..gateways import get_gateway

    chargeback = Chargeback.objects.select_for_update().get(pk=int(request.target_id))
    chargeback.check_transition(current=chargeback.status, target=Chargeback.Status.ACCEPTED)
    get_gateway(chargeback.gateway).accept_dispute(
        dispute_reference=chargeback.gateway_reference,
        idempotency_key=f"chargeback-{chargeback.pk}-accept",
    )
    return chargeback_set_status(
        chargeback=chargeback, status=Chargeback.Status.ACCEPTED, actor=actor
    )


class EvidenceAlreadySubmitted(PaymentsError):
    http_status = 409

    def __init__(self) -> None:
        super().__init__("The evidence was submitted; it can no longer be changed.")


def evidence_save_draft(*, chargeback: Chargeback, text: str, actor: User) -> ChargebackEvidence:
    with transaction.atomic(), context.acting(actor):
        chargeback = Chargeback.objects.select_for_update().get(pk=chargeback.pk)
        evidence, _ = ChargebackEvidence.objects.get_or_create(chargeback=chargeback)
        if evidence.is_submitted:
            raise EvidenceAlreadySubmitted
        evidence.text, evidence.updated_by = text, actor
        evidence.save()
        return evidence


def evidence_add_file(*, chargeback: Chargeback, upload: Any, actor: User) -> EvidenceFile:
    from ..core.uploads import check_upload, store_checked_upload

    checked = check_upload(upload)
    with transaction.atomic(), context.acting(actor):
        chargeback = Chargeback.objects.select_for_update().get(pk=chargeback.pk)
        evidence, _ = ChargebackEvidence.objects.get_or_create(chargeback=chargeback)
        if evidence.is_submitted:
            raise EvidenceAlreadySubmitted
        return store_checked_upload(
            EvidenceFile(evidence=evidence, uploaded_by=actor), upload, checked
        )


def evidence_submit(*, chargeback: Chargeback, actor: User) -> ChargebackEvidence:
    """Send the evidence to the gateway, once; the chargeback goes under review."""
    from ..gateways import get_gateway

    with transaction.atomic(), context.acting(actor):
        chargeback = Chargeback.objects.select_for_update().get(pk=chargeback.pk)
        evidence = (
            ChargebackEvidence.objects.select_for_update().filter(chargeback=chargeback).first()
        )
        if evidence is None or not evidence.text.strip():
            raise PaymentsError("Write the evidence before submitting it.")
        if evidence.is_submitted:
            raise EvidenceAlreadySubmitted
        chargeback.check_transition(
            current=chargeback.status, target=Chargeback.Status.UNDER_REVIEW
        )
        files = [f"- {f.original_name} (sha256 {f.sha256})" for f in evidence.files.all()]
        text = evidence.text + ("\n\nDocuments held:\n" + "\n".join(files) if files else "")
        # Holding the row lock across this call keeps a second submit out; the key makes a
        # retry after a lost answer harmless at Stripe.
        get_gateway(chargeback.gateway).submit_dispute_evidence(
            dispute_reference=chargeback.gateway_reference,
            text=text,
            idempotency_key=f"chargeback-{chargeback.pk}-evidence",
        )
        evidence.submitted_by, evidence.submitted_at = actor, timezone.now()
        evidence.save()
        chargeback.transition_to(Chargeback.Status.UNDER_REVIEW)
        chargeback.save()
        return evidence


def chargeback_assign(*, chargeback: Chargeback, assignee: User | None, actor: User) -> Chargeback:
    with transaction.atomic(), context.acting(actor):
        chargeback = Chargeback.objects.select_for_update().get(pk=chargeback.pk)
        chargeback.assignee = assignee
        chargeback.save()
        return chargeback


log = logging.getLogger(__name__)


SETTLED = [Payment.Status.CAPTURED, Payment.Status.PARTIALLY_REFUNDED, Payment.Status.REFUNDED]


def chargebacks_due_soon(*, now: datetime.datetime | None = None) -> QuerySet[Chargeback]:
    now = now or timezone.now()
    soon = now + datetime.timedelta(days=settings.CHARGEBACK_DUE_SOON_DAYS)
    return Chargeback.objects.filter(
        status=Chargeback.Status.NEEDS_RESPONSE, evidence_due_by__gte=now, evidence_due_by__lte=soon
    )


def month_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime(day.year, day.month, 1, tzinfo=datetime.UTC)
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    return start, end


@dataclass(frozen=True)
class MerchantRatio:
    merchant_id: int
    chargebacks: int
    settled_payments: int

    @property
    def ratio(self) -> float:
        return self.chargebacks / self.settled_payments if self.settled_payments else 0.0


def chargeback_ratios(*, month: datetime.date) -> list[MerchantRatio]:
    """Chargebacks opened in the month over settled payments made in the month, per merchant
    with at least one chargeback: two grouped queries, whatever the number of merchants."""
    start, end = month_bounds(month)
    in_month = Q(created_at__gte=start, created_at__lt=end)
    chargebacks = dict(
        Chargeback.objects.filter(in_month)
        .values_list("payment__merchant")
        .annotate(n=Count("pk"))
        .values_list("payment__merchant", "n")
    )
    settled = dict(
        Payment.objects.filter(in_month, merchant__in=list(chargebacks), status__in=SETTLED)
        .values_list("merchant")
        .annotate(n=Count("pk"))
        .values_list("merchant", "n")
    )
    return [MerchantRatio(m, n, settled.get(m, 0)) for m, n in sorted(chargebacks.items())]


def daily_review(*, now: datetime.datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    due_soon = list(chargebacks_due_soon(now=now).select_related("payment"))
    for chargeback in due_soon:
        log.warning(
            "chargeback %s (payment %s) needs evidence by %s",
            chargeback.gateway_reference,
            chargeback.payment_id,
            # The query selects chargebacks with a due date only.
            cast(datetime.datetime, chargeback.evidence_due_by).isoformat(),
        )
    expired = 0
    for chargeback in Chargeback.objects.filter(
        status=Chargeback.Status.NEEDS_RESPONSE, evidence_due_by__lt=now
    ):
        chargeback_set_status(chargeback=chargeback, status=Chargeback.Status.EXPIRED)
        expired += 1
    threshold = settings.CHARGEBACK_RATIO_THRESHOLD
    flagged = 0
    for ratio in chargeback_ratios(month=now.date()):
        if ratio.ratio > threshold or (ratio.chargebacks and not ratio.settled_payments):
            merchant = Merchant.objects.get(pk=ratio.merchant_id)
            merchant_flag_for_review(
                merchant=merchant,
                reason=(
                    f"chargeback ratio {ratio.ratio:.2%} in {now:%Y-%m} "
                    f"({ratio.chargebacks} of {ratio.settled_payments} settled payments) "
                    f"is above {threshold:.2%}"
                ),
            )
            flagged += 1
    return {"due_soon": len(due_soon), "expired": expired, "flagged": flagged}
