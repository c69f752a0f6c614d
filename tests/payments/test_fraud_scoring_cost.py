"""What scoring a payment costs and what it keeps between payments: two statements per payment
whatever the number of rules, the live rules kept per process and read again when a rule
changes (the change fires on the very next payment), both ways of storing a scoring writing
the same rows, and the prepared statements surviving a rolled-back transaction."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audits import context
from payments.fraud import recording
from payments.fraud.engine import _score, learned, payment_candidate
from payments.fraud.models import (
    FraudEvaluation,
    FraudRule,
    FraudRuleHit,
    FraudSignal,
    MerchantAmountStats,
)
from payments.fraud.services import fraud_rule_change
from payments.models import Payment
from tests.payments.factories import MerchantFactory
from tests.payments.test_fraud_rules import last_hits, pay, rule

pytestmark = pytest.mark.django_db


def card_burst(officer: User, *, most: int) -> FraudRule:
    return rule(officer, "card-burst", "velocity_count", subject="payment", key="card",
                window_minutes=60, max_count=most)  # fmt: skip


def _many_rules(officer: User) -> None:
    for key, minutes in (("card", 60), ("email", 1440), ("ip", 60), ("device", 60)):
        rule(officer, f"{key}-burst", "velocity_count", subject="payment", key=key,
             window_minutes=minutes, max_count=10)  # fmt: skip
    rule(officer, "merchant-volume", "velocity_sum", subject="payment", key="merchant",
         window_minutes=60, max_amount=10**9)  # fmt: skip
    rule(officer, "merchant-day", "velocity_count", subject="payment", key="merchant",
         window_minutes=1440, max_count=1000)  # fmt: skip
    rule(officer, "odd-amount", "amount_outlier", max_z=4, min_history=20)
    rule(officer, "quick-refund", "pay_then_refund", within_minutes=60, min_fraction=0.9)


def test_a_scored_payment_costs_two_statements_whatever_the_number_of_rules(
    officer: User, django_assert_num_queries: Any
) -> None:
    _many_rules(officer)
    merchant = MerchantFactory()

    def client() -> Any:
        return context.bind(source="api", ip_address="203.0.113.7", device_id="dev-1")

    with client():
        pay(merchant, card_fingerprint="fp")  # the process reads the live rules once
    from payments.fraud.engine import fraud_score_payment

    payment = Payment.objects.order_by("-pk").first()
    assert payment is not None
    postgres = connection.vendor == "postgresql"
    # SQLite writes the signal, the evaluation and the amount history a statement each
    with client(), django_assert_num_queries(2 if postgres else 4) as captured:
        fraud_score_payment(payment=payment, card_fingerprint="fp")
    measures, *writes = (q["sql"] for q in captured.captured_queries)
    assert measures.count("payments_fraudsignal") == 6  # the six windows, one subquery each
    assert writes[0].startswith("WITH signal AS (INSERT") or not postgres


def _reads(captured: CaptureQueriesContext) -> tuple[int, int]:
    """(statements that measured, statements that loaded the live rules)."""
    sqls = [q["sql"] for q in captured.captured_queries]
    return (
        sum("r.live_ids" in sql for sql in sqls),
        sum('"payments_fraudrule"."is_current"' in sql for sql in sqls),
    )


def test_a_rule_change_is_seen_by_the_statement_that_measures_and_fires_at_once(
    officer: User,
) -> None:
    burst = card_burst(officer, most=5)
    merchant = MerchantFactory()
    assert last_hits(pay(merchant, card_fingerprint="fp")) == []
    with CaptureQueriesContext(connection) as captured:
        assert last_hits(pay(merchant, card_fingerprint="fp")) == []
    assert _reads(captured) == (1, 0)  # the rules kept from the last payment
    tighter = fraud_rule_change(
        rule=burst, params={**burst.params, "max_count": 2}, note="tighter", actor=officer
    )
    with CaptureQueriesContext(connection) as captured:
        third = pay(merchant, card_fingerprint="fp")
    assert _reads(captured) == (2, 1)  # changed: the rules, and the measures again
    [hit] = last_hits(third)
    assert (hit.rule_id, hit.figures["count"], hit.figures["max_count"]) == (tighter.pk, 3, 2)
    fraud_rule_change(rule=tighter, enabled=False, note="too noisy", actor=officer)
    quiet = pay(merchant, card_fingerprint="fp")
    assert last_hits(quiet) == []
    assert FraudEvaluation.objects.get(payment=quiet).rules_checked == 0


def _rows(evaluation: FraudEvaluation) -> dict[str, Any]:
    signal = FraudSignal.objects.filter(payment_id=evaluation.payment_id).values().get()
    stats = MerchantAmountStats.objects.values("count", "mean_log", "m2_log").get(
        merchant_id=evaluation.merchant_id
    )
    hits = list(
        FraudRuleHit.objects.filter(evaluation=evaluation).values(
            "rule_id", "rule_key", "score", "figures", "explanation"
        )
    )
    stored = FraudEvaluation.objects.values().get(pk=evaluation.pk)
    for row in (signal, stored):
        for name in ("id", "payment_id", "created_at", "at"):
            row.pop(name, None)
    return {"signal": signal, "stats": stats, "hits": hits, "evaluation": stored}


class _Undo(Exception):
    pass


@pytest.mark.postgres
def test_the_one_statement_and_the_statement_each_store_the_same_rows(officer: User) -> None:
    card_burst(officer, most=1)
    merchant = MerchantFactory()
    pay(merchant, 3_000, card_fingerprint="fp")
    stored = []
    for write in (recording._one_statement, recording._statement_each):
        with pytest.raises(_Undo), transaction.atomic():  # each on the same history
            payment = Payment.objects.create(
                merchant=merchant, gateway="stripe", amount=4_000, currency="EUR"
            )
            scored, candidate = _score(payment_candidate(payment, card="fp"))
            assert candidate.amount_history is not None
            record = recording.Recording(
                subject="payment", outcome="passed", candidate=candidate, score=scored.score,
                rules_checked=scored.rules_checked, hits=scored.hits, store_signal=True,
                amount_history=learned(candidate.amount_history, 4_000),
            )  # fmt: skip
            row = recording._evaluation_row(record, payment.created_at)
            stored.append(_rows(FraudEvaluation(id=write(record, row), **row)))
            raise _Undo
    assert stored[0]["hits"] and stored[0]["stats"]["count"] == 2
    assert stored[0] == stored[1]


def _prepared_fraud_statements() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%payments_fraudsignal%"],
        )
        return int(cursor.fetchone()[0])


@pytest.mark.postgres
def test_scoring_statements_are_prepared_and_outlive_a_rolled_back_payment(
    officer: User,
) -> None:
    card_burst(officer, most=1)
    merchant = MerchantFactory()
    pay(merchant, card_fingerprint="fp")
    assert _prepared_fraud_statements() == 2  # the measures, the writes
    with pytest.raises(_Undo), transaction.atomic():
        pay(merchant, card_fingerprint="fp")
        raise _Undo
    [hit] = last_hits(pay(merchant, card_fingerprint="fp"))
    assert hit.figures["count"] == 2  # the rolled-back payment is not counted
    assert _prepared_fraud_statements() == 2
