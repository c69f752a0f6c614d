"""Scoring a payment or a refund in the transaction that creates it.

Every current, enabled rule runs its check on the candidate; the score is the sum of the scores
of the rules that fired (at most 100). The evaluation is stored with each fired rule's version,
figures and sentence. At FRAUD_ALERT_SCORE an alert joins the review queue; at FRAUD_HOLD_SCORE
a payment's merchant is flagged for review and a refund request waits for a second person
(refund_request asks the approvals engine).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audits import context, devices
from audits.crypto import envelope

from .checks import WINDOW_JUDGES, Candidate, Finding, run_check, window_sql
from .models import (
    EvaluationOutcome,
    EvaluationSubject,
    FraudAlert,
    FraudEvaluation,
    FraudRule,
    FraudRuleHit,
    FraudSignal,
    MerchantAmountStats,
    SignalKind,
)

if TYPE_CHECKING:
    from payments.models import Payment, Refund

# Where a client address and device say something about the customer: not for work the system
# does itself (webhooks, tasks, commands), whose address is ours.
CLIENT_SOURCES = frozenset({"web", "api"})


@dataclass(frozen=True)
class Scored:
    score: int
    hits: list[tuple[FraudRule, Finding]]
    rules_checked: int

    @property
    def explanation(self) -> str:
        return "; ".join(f"{rule.name} (+{rule.score}): {f.explanation}" for rule, f in self.hits)


def current_rules() -> list[FraudRule]:
    return list(FraudRule.objects.filter(is_current=True, enabled=True).order_by("key"))


def score(candidate: Candidate, rules: list[FraudRule]) -> Scored:
    """Every rule's check on the candidate. The window rules' measures are read in one
    statement (a scalar subquery each), whatever their number; the other checks run their own."""
    windows: list[tuple[FraudRule, str, list[Any]]] = []
    hits = []
    for rule in rules:
        if rule.kind in WINDOW_JUDGES:
            query = window_sql(candidate, rule.params)
            if query is not None:
                windows.append((rule, *query))
            continue
        finding = run_check(rule.kind, candidate, rule.params)
        if finding is not None:
            hits.append((rule, finding))
    if windows:
        sql = "SELECT " + ", ".join(f"({part})" for _, part, _ in windows)
        with connection.cursor() as cursor:
            cursor.execute(sql, [value for _, _, params in windows for value in params])
            measured = cursor.fetchone()
        for (rule, _, _), stored in zip(windows, measured, strict=True):
            finding = WINDOW_JUDGES[rule.kind](candidate, rule.params, int(stored))
            if finding is not None:
                hits.append((rule, finding))
    hits.sort(key=lambda hit: hit[0].key)
    total = min(100, sum(rule.score for rule, _ in hits))
    return Scored(total, hits, len(rules))


def email_key(email: str) -> str:
    """The customer's email as the windows count it: a keyed blind index, never in clear."""
    email = email.strip().lower()
    return envelope.blind_index(email) if email else ""


def _client() -> tuple[str, str]:
    """(IP address, device key) of the client behind the current request, if it is one: the
    server-side device fingerprint (audits/devices.py) when the request is at hand, else a
    hash of the client's device id."""
    bound = context.current()
    if bound.source not in CLIENT_SOURCES:
        return "", ""
    if bound.request is not None:
        return bound.ip_address or "", devices.fingerprint(bound.request).key
    device = bound.device_id or ""
    device_key = hashlib.sha256(device.encode()).hexdigest() if device else ""
    return bound.ip_address or "", device_key


def _remember_devices(merchant_id: int) -> None:
    """A payment made with an API token: the token and its merchant were seen on this device
    (kept per token and per merchant, audits/devices.py), in the payment's transaction."""
    bound = context.current()
    if bound.request is None or bound.token_id is None:
        return
    fp = devices.fingerprint(bound.request)
    devices.device_seen(subject=f"payments.apitoken:{bound.token_id}", fp=fp)
    devices.device_seen(subject=f"payments.merchant:{merchant_id}", fp=fp)


def payment_candidate(payment: Payment, *, card: str = "") -> Candidate:
    ip, device = _client()
    return Candidate(
        kind=SignalKind.PAYMENT,
        merchant_id=payment.merchant_id,
        payment_id=payment.pk,
        currency=payment.currency,
        amount=payment.amount,
        at=payment.created_at,
        card=card,
        email=email_key(payment.customer_email),
        ip=ip,
        device=device,
    )


def refund_candidate(payment: Payment, *, amount: int, card: str = "") -> Candidate:
    ip, device = _client()
    original = FraudSignal.objects.filter(payment=payment, kind=SignalKind.PAYMENT).first()
    return Candidate(
        kind=SignalKind.REFUND,
        merchant_id=payment.merchant_id,
        payment_id=payment.pk,
        currency=payment.currency,
        amount=amount,
        at=timezone.now(),
        card=card or (original.card if original else ""),
        email=email_key(payment.customer_email),
        ip=ip,
        device=device,
        payment_at=payment.created_at,
        payment_amount=payment.captured_amount or payment.amount,
    )


def _store_signal(candidate: Candidate, refund: Refund | None = None) -> None:
    FraudSignal.objects.create(
        kind=candidate.kind,
        merchant_id=candidate.merchant_id,
        payment_id=candidate.payment_id,
        refund=refund,
        currency=candidate.currency,
        amount=candidate.amount,
        card=candidate.card,
        email=candidate.email,
        ip=candidate.ip,
        device=candidate.device,
        at=candidate.at,
    )


def _amount_history(candidate: Candidate) -> MerchantAmountStats:
    stats, _ = MerchantAmountStats.objects.get_or_create(
        merchant_id=candidate.merchant_id, currency=candidate.currency
    )
    return stats


def _learn_amount(candidate: Candidate, stats: MerchantAmountStats) -> None:
    """Welford's update of the merchant's log-amount history; the caller holds the merchant's
    row lock (creating a payment takes it), so two payments never update it at once."""
    x = math.log(candidate.amount)
    stats.count += 1
    delta = x - stats.mean_log
    stats.mean_log += delta / stats.count
    stats.m2_log += delta * (x - stats.mean_log)
    stats.save(update_fields=["count", "mean_log", "m2_log"])


def _record(
    *,
    subject: str,
    candidate: Candidate,
    scored: Scored,
    outcome: str,
    refund: Refund | None = None,
) -> FraudEvaluation:
    evaluation = FraudEvaluation.objects.create(
        subject=subject,
        merchant_id=candidate.merchant_id,
        payment_id=candidate.payment_id,
        refund=refund,
        score=scored.score,
        outcome=outcome,
        rules_checked=scored.rules_checked,
    )
    if scored.hits:
        FraudRuleHit.objects.bulk_create(
            FraudRuleHit(
                evaluation=evaluation,
                rule=rule,
                rule_key=rule.key,
                score=rule.score,
                figures=finding.figures,
                explanation=f"{rule.name}: {finding.explanation}"[:500],
            )
            for rule, finding in scored.hits
        )
    return evaluation


def _alert(evaluation: FraudEvaluation, scored: Scored) -> FraudAlert | None:
    """An alert in the queue, unless this payment already has an open one (a second hit on it
    is read there, in its evaluations)."""
    if FraudAlert.objects.filter(payment_id=evaluation.payment_id, status="open").exists():
        return None
    return FraudAlert.objects.create(
        evaluation=evaluation,
        merchant_id=evaluation.merchant_id,
        payment_id=evaluation.payment_id,
        score=scored.score,
        summary=scored.explanation[:500],
    )


@dataclass(frozen=True)
class PaymentScored:
    evaluation: FraudEvaluation
    explanation: str

    @property
    def flags_merchant(self) -> bool:
        return self.evaluation.outcome == EvaluationOutcome.FLAGGED

    @property
    def flag_reason(self) -> str:
        e = self.evaluation
        return f"fraud score {e.score} on payment {e.payment_id}: {self.explanation}"


def fraud_score_payment(*, payment: Payment, card_fingerprint: str = "") -> PaymentScored:
    """Score a payment just created; the caller's transaction holds the merchant's row lock.
    An outcome FLAGGED asks the caller to flag the merchant for review (the payment services
    do, through merchant_flag_for_review, with the answer's flag_reason)."""
    candidate = payment_candidate(payment, card=card_fingerprint)
    stats = _amount_history(candidate)
    candidate = dataclasses.replace(
        candidate, amount_history=(stats.count, stats.mean_log, stats.m2_log)
    )
    scored = score(candidate, current_rules())
    _store_signal(candidate)
    _remember_devices(payment.merchant_id)
    outcome = EvaluationOutcome.PASSED
    if scored.score >= settings.FRAUD_HOLD_SCORE:
        outcome = EvaluationOutcome.FLAGGED
    elif scored.score >= settings.FRAUD_ALERT_SCORE:
        outcome = EvaluationOutcome.ALERTED
    evaluation = _record(
        subject=EvaluationSubject.PAYMENT, candidate=candidate, scored=scored, outcome=outcome
    )
    # Learned after scoring: a payment is judged against the history before it.
    _learn_amount(candidate, stats)
    if outcome != EvaluationOutcome.PASSED:
        _alert(evaluation, scored)
    return PaymentScored(evaluation, scored.explanation)


def fraud_score_refund(*, refund: Refund, payment: Payment) -> FraudEvaluation:
    """Score a refund just created (the caller holds the payment's row lock)."""
    candidate = refund_candidate(payment, amount=refund.amount)
    scored = score(candidate, current_rules())
    _store_signal(candidate, refund=refund)
    alerting = scored.score >= settings.FRAUD_ALERT_SCORE
    evaluation = _record(
        subject=EvaluationSubject.REFUND,
        candidate=candidate,
        scored=scored,
        outcome=EvaluationOutcome.ALERTED if alerting else EvaluationOutcome.PASSED,
        refund=refund,
    )
    if alerting:
        _alert(evaluation, scored)
    return evaluation


def fraud_screen_refund_request(*, payment: Payment, amount: int) -> Scored:
    """Score a refund a person asks for, before it exists: refund_request holds it for a
    second person when the score reaches FRAUD_HOLD_SCORE. Nothing is written here."""
    return score(refund_candidate(payment, amount=amount), current_rules())


def fraud_record_hold(*, payment: Payment, amount: int, scored: Scored) -> FraudEvaluation:
    """Store the screening that held a refund request, and its alert."""
    candidate = refund_candidate(payment, amount=amount)
    evaluation = _record(
        subject=EvaluationSubject.REFUND_REQUEST,
        candidate=candidate,
        scored=scored,
        outcome=EvaluationOutcome.HELD,
    )
    _alert(evaluation, scored)
    return evaluation
