"""Reconciliation: compare our payments with the gateway's view and fix what webhooks missed."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from audits import context

from . import services
from .gateways import GatewayError, get_gateway
from .models import Payment

# Payments whose state can still change at the gateway.
OPEN_STATES = [
    Payment.Status.PENDING,
    Payment.Status.PROCESSING,
    Payment.Status.AUTHORIZED,
    Payment.Status.CAPTURED,
]


@dataclass
class ReconcileReport:
    checked: int = 0
    fixed: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # seen, not fixable automatically
    errors: list[str] = field(default_factory=list)


def reconcile(
    *, gateway: str, since: datetime.datetime, progress: Callable[[int, int], None] | None = None
) -> ReconcileReport:
    adapter = get_gateway(gateway)
    payments = (
        Payment.objects.filter(gateway=gateway, created_at__gte=since, status__in=OPEN_STATES)
        .exclude(gateway_reference="")
        .order_by("pk")
    )
    total = payments.count()
    report = ReconcileReport()
    with context.bind(source="reconcile", detail=f"reconcile {gateway}"):
        for payment in payments.iterator(chunk_size=500):
            report.checked += 1
            if progress and report.checked % 100 == 0:
                progress(report.checked, total)
            try:
                theirs = adapter.fetch(reference=payment.gateway_reference)
            except GatewayError as exc:
                report.errors.append(f"payment {payment.pk} ({payment.gateway_reference}): {exc}")
                continue
            if theirs.status == payment.status:
                continue
            label = (
                f"payment {payment.pk} ({payment.gateway_reference}): ours {payment.status}, "
                f"{gateway} {theirs.status}"
            )
            if services.payment_apply_gateway_state(
                payment=payment,
                status=theirs.status,
                captured_amount=theirs.captured_amount or None,
            ):
                report.fixed.append(label)
            else:
                report.differences.append(label + " (not a forward move; left for a person)")
    return report
