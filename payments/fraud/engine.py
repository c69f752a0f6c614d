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
from django.utils import timezone

from audits import context, devices
from audits.crypto import envelope

from .checks import WINDOW_JUDGES, Candidate, Finding, run_check
from .measures import measure
from .models import (
    EvaluationOutcome,
    EvaluationSubject,
    FraudAlert,
    FraudEvaluation,
    FraudRule,
    SignalKind,
)
from .recording import Recording, evaluation_store
from .statements import fetch_one

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


def score(candidate: Candidate) -> Scored:
    """Every live rule's check on the candidate (see _score)."""
    return _score(candidate)[0]


def _score(candidate: Candidate) -> tuple[Scored, Candidate]:
    """(the score, the candidate with the merchant's amount history when it is a payment).
    The window rules' measures, the history and the live rules' stamp are read in one
    statement (measures.py), whatever the number of rules; the other checks run their own."""
    history = candidate.kind == SignalKind.PAYMENT and candidate.amount_history is None
    measured = measure(candidate, history=history)
    if measured.history is not None:
        candidate = dataclasses.replace(candidate, amount_history=measured.history)
    hits = []
    for rule in measured.rules:
        if rule.kind not in WINDOW_JUDGES:
            finding = run_check(rule.kind, candidate, rule.params)
            if finding is not None:
                hits.append((rule, finding))
    for rule, stored in measured.windows:
        finding = WINDOW_JUDGES[rule.kind](candidate, rule.params, stored)
        if finding is not None:
            hits.append((rule, finding))
    hits.sort(key=lambda hit: hit[0].key)
    total = min(100, sum(rule.score for rule, _ in hits))
    return Scored(total, hits, len(measured.rules)), candidate


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


def _candidate(payment: Payment, **fields: Any) -> Candidate:
    """The payment's side of a candidate (merchant, currency, customer, client) with the
    fields that make it a payment or a refund."""
    ip, device = _client()
    return Candidate(
        merchant_id=payment.merchant_id,
        payment_id=payment.pk,
        currency=payment.currency,
        email=email_key(payment.customer_email),
        ip=ip,
        device=device,
        **fields,
    )


def payment_candidate(payment: Payment, *, card: str = "") -> Candidate:
    return _candidate(
        payment, kind=SignalKind.PAYMENT, amount=payment.amount, at=payment.created_at, card=card
    )


# The card of the payment's own signal (the newest, in FraudSignal's ordering), NULL when it
# has none: the one column a refund's candidate needs, in one prepared statement, where the
# ORM built a query and a whole row for it on every refund the webhook worker records.
_PAYMENT_CARD_SQL = (
    "SELECT (SELECT card FROM payments_fraudsignal WHERE payment_id = %s AND kind = %s "
    "ORDER BY at DESC, id DESC LIMIT 1)"
)


def refund_candidate(payment: Payment, *, amount: int, card: str = "") -> Candidate:
    if not card:
        (original,) = fetch_one(_PAYMENT_CARD_SQL, [payment.pk, str(SignalKind.PAYMENT)])
        card = original or ""
    return _candidate(
        payment,
        kind=SignalKind.REFUND,
        amount=amount,
        at=timezone.now(),
        card=card,
        payment_at=payment.created_at,
        payment_amount=payment.captured_amount or payment.amount,
    )


def learned(history: tuple[int, float, float], amount: int) -> tuple[int, float, float]:
    """Welford's update of the merchant's log-amount history (count, mean, m2) with one more
    payment; stored after the scoring under the merchant's row lock (creating a payment takes
    it), so two payments never update it at once."""
    count, mean_log, m2_log = history
    x = math.log(amount)
    count += 1
    delta = x - mean_log
    mean_log += delta / count
    m2_log += delta * (x - mean_log)
    return count, mean_log, m2_log


def _outcome(scored: Scored, *, flags: bool) -> str:
    if flags and scored.score >= settings.FRAUD_HOLD_SCORE:
        return EvaluationOutcome.FLAGGED
    if scored.score >= settings.FRAUD_ALERT_SCORE:
        return EvaluationOutcome.ALERTED
    return EvaluationOutcome.PASSED


def _recording(subject: str, candidate: Candidate, scored: Scored, outcome: str) -> Recording:
    return Recording(
        subject=subject,
        outcome=outcome,
        candidate=candidate,
        score=scored.score,
        rules_checked=scored.rules_checked,
        hits=scored.hits,
    )


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
    do, through merchant_flag_for_review, with the answer's flag_reason). Two statements while
    the rules are unchanged: the measures, then the signal, the evaluation and the amount
    history written together (recording.py)."""
    scored, candidate = _score(payment_candidate(payment, card=card_fingerprint))
    _remember_devices(payment.merchant_id)
    outcome = _outcome(scored, flags=True)
    evaluation = evaluation_store(
        dataclasses.replace(
            _recording(EvaluationSubject.PAYMENT, candidate, scored, outcome),
            store_signal=True,
            # Learned after scoring: a payment is judged against the history before it.
            amount_history=learned(candidate.amount_history or (0, 0.0, 0.0), candidate.amount),
        )
    )
    if outcome != EvaluationOutcome.PASSED:
        _alert(evaluation, scored)
    return PaymentScored(evaluation, scored.explanation)


def fraud_score_refund(*, refund: Refund, payment: Payment) -> FraudEvaluation:
    """Score a refund just created (the caller holds the payment's row lock)."""
    candidate = refund_candidate(payment, amount=refund.amount)
    scored = score(candidate)
    outcome = _outcome(scored, flags=False)
    evaluation = evaluation_store(
        dataclasses.replace(
            _recording(EvaluationSubject.REFUND, candidate, scored, outcome),
            refund_id=refund.pk,
            store_signal=True,
        )
    )
    if outcome != EvaluationOutcome.PASSED:
        _alert(evaluation, scored)
    return evaluation


def fraud_screen_refund_request(*, payment: Payment, amount: int) -> Scored:
    """Score a refund a person asks for, before it exists: refund_request holds it for a
    second person when the score reaches FRAUD_HOLD_SCORE. Nothing is written here."""
    return score(refund_candidate(payment, amount=amount))


def fraud_record_hold(*, payment: Payment, amount: int, scored: Scored) -> FraudEvaluation:
    """Store the screening that held a refund request, and its alert."""
    candidate = refund_candidate(payment, amount=amount)
    evaluation = evaluation_store(
        _recording(EvaluationSubject.REFUND_REQUEST, candidate, scored, EvaluationOutcome.HELD)
    )
    _alert(evaluation, scored)
    return evaluation
