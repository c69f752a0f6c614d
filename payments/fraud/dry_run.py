"""A changed rule replayed over the last 90 days before it goes live: which payments and
refunds it would have fired on, next to what the current version fired on, and how the alerts
already closed on those payments were judged (a first look at its precision).

Windows are replayed as they were (each candidate counts the signals before it); the amount
history is the merchant's history today (the rolling figures are not kept per day)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from .checks import SIGNAL_FIELDS, Candidate, Finding, run_check, validate_params
from .models import AlertStatus, FraudAlert, FraudSignal, RuleKind, SignalKind

DRY_RUN_DAYS = 90
# The most recent candidates replayed at most: a dry run answers while the person waits.
DRY_RUN_MAX = 20_000
SHOWN = 100

# The subject each check looks at (velocity checks name theirs in the parameters).
_FIXED_SUBJECT: dict[str, str] = {
    RuleKind.REFUND_RATIO: SignalKind.REFUND,
    RuleKind.PAY_THEN_REFUND: SignalKind.REFUND,
    RuleKind.AMOUNT_OUTLIER: SignalKind.PAYMENT,
}


@dataclass
class DryRun:
    days: int
    evaluated: int = 0
    truncated: bool = False
    fired: list[tuple[FraudSignal, Finding]] = field(default_factory=list)
    fired_count: int = 0
    current_count: int | None = None  # what the live version fired on, same candidates
    merchants: int = 0
    closed_fraud: int = 0
    closed_false_positive: int = 0

    @property
    def shown(self) -> list[tuple[FraudSignal, Finding]]:
        return self.fired[:SHOWN]


def _candidate(signal: FraudSignal) -> Candidate:
    refund = signal.kind == SignalKind.REFUND
    payment = signal.payment
    return Candidate(
        **{name: getattr(signal, name) for name in SIGNAL_FIELDS},
        signal_id=signal.pk,
        payment_at=payment.created_at if refund else None,
        payment_amount=(payment.captured_amount or payment.amount) if refund else None,
    )


def fraud_rule_dry_run(
    *,
    kind: str,
    params: Any,
    current_params: dict[str, Any] | None = None,
    days: int = DRY_RUN_DAYS,
    now: datetime.datetime | None = None,
) -> DryRun:
    """Replay `params` (validated here: FraudRuleInvalid) over the last `days`. Writes nothing."""
    cleaned = validate_params(kind, params)
    subject = _FIXED_SUBJECT.get(kind) or cleaned["subject"]
    since = (now or timezone.now()) - datetime.timedelta(days=days)
    signals = list(
        FraudSignal.objects.filter(kind=subject, at__gte=since)
        .select_related("payment")
        .order_by("-at", "-pk")[: DRY_RUN_MAX + 1]
    )
    result = DryRun(days=days, truncated=len(signals) > DRY_RUN_MAX)
    signals = signals[:DRY_RUN_MAX]
    result.evaluated = len(signals)
    current_fired = 0
    for signal in signals:
        candidate = _candidate(signal)
        finding = run_check(kind, candidate, cleaned)
        if finding is not None:
            result.fired.append((signal, finding))
        if current_params is not None and run_check(kind, candidate, current_params):
            current_fired += 1
    result.fired_count = len(result.fired)
    result.current_count = current_fired if current_params is not None else None
    result.merchants = len({s.merchant_id for s, _ in result.fired})
    judged = (
        FraudAlert.objects.filter(payment_id__in={s.payment_id for s, _ in result.fired})
        .exclude(status=AlertStatus.OPEN)
        .values_list("status", flat=True)
    )
    statuses = list(judged)
    result.closed_fraud = statuses.count(AlertStatus.FRAUD)
    result.closed_false_positive = statuses.count(AlertStatus.FALSE_POSITIVE)
    return result
