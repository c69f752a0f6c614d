"""Storing one scoring: the candidate's signal (what later windows count), the evaluation with
the rule versions that fired, and the merchant's amount history after the payment.

On PostgreSQL all of it is one statement (data-modifying WITH clauses), so a scored payment
costs this and the measuring statement; elsewhere (SQLite) one statement each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone

from .checks import SIGNAL_FIELDS, Candidate, Finding
from .models import FraudEvaluation, FraudRule, FraudRuleHit, FraudSignal, MerchantAmountStats
from .statements import fetch_one


@dataclass(frozen=True)
class Recording:
    subject: str
    outcome: str
    candidate: Candidate
    score: int
    rules_checked: int
    hits: list[tuple[FraudRule, Finding]] = field(default_factory=list)
    refund_id: int | None = None
    store_signal: bool = False
    # the merchant's (count, mean, m2) of log(amount) with this payment learned
    amount_history: tuple[int, float, float] | None = None


def _signal_row(r: Recording) -> dict[str, Any]:
    return {
        **{name: getattr(r.candidate, name) for name in SIGNAL_FIELDS},
        "refund_id": r.refund_id,
    }


def _evaluation_row(r: Recording, now: Any) -> dict[str, Any]:
    return {
        "subject": r.subject,
        "merchant_id": r.candidate.merchant_id,
        "payment_id": r.candidate.payment_id,
        "refund_id": r.refund_id,
        "score": r.score,
        "outcome": r.outcome,
        "rules_checked": r.rules_checked,
        "created_at": now,
    }


def _hit_rows(r: Recording) -> list[dict[str, Any]]:
    return [
        {
            "rule_id": rule.pk,
            "rule_key": rule.key,
            "score": rule.score,
            "figures": finding.figures,
            "explanation": f"{rule.name}: {finding.explanation}"[:500],
        }
        for rule, finding in r.hits
    ]


def _history_upsert(r: Recording) -> tuple[str, list[Any]] | None:
    """The merchant's amount history as learned, inserted or replaced (PostgreSQL and SQLite
    share the syntax)."""
    if r.amount_history is None:
        return None
    count, mean_log, m2_log = r.amount_history
    row = {
        "merchant_id": r.candidate.merchant_id,
        "currency": r.candidate.currency,
        "count": count,
        "mean_log": mean_log,
        "m2_log": m2_log,
    }
    sql, params = _insert(MerchantAmountStats._meta.db_table, row)
    sql += (
        " ON CONFLICT (merchant_id, currency) DO UPDATE SET count = EXCLUDED.count, "
        "mean_log = EXCLUDED.mean_log, m2_log = EXCLUDED.m2_log"
    )
    return sql, params


def _insert(table: str, row: dict[str, Any]) -> tuple[str, list[Any]]:
    marks = ", ".join(["%s"] * len(row))
    # table and column names are the models' own, never input
    sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks})"  # noqa: S608  # nosec B608
    return sql, list(row.values())


def _one_statement(r: Recording, evaluation: dict[str, Any]) -> int:
    parts: list[tuple[str, str, list[Any]]] = []
    if r.store_signal:
        parts.append(("signal", *_insert(FraudSignal._meta.db_table, _signal_row(r))))
    sql, params = _insert(FraudEvaluation._meta.db_table, evaluation)
    parts.append(("evaluation", sql + " RETURNING id", params))
    hits = _hit_rows(r)
    if hits:
        values = ", ".join(["(%s::bigint, %s::text, %s::integer, %s::jsonb, %s::text)"] * len(hits))
        parts.append(
            (
                "hits",
                f"INSERT INTO {FraudRuleHit._meta.db_table} "  # noqa: S608  # nosec B608
                "(evaluation_id, rule_id, rule_key, score, figures, explanation) "
                "SELECT evaluation.id, h.rule_id, h.rule_key, h.score, h.figures, h.explanation "
                f"FROM evaluation, (VALUES {values}) "
                "AS h (rule_id, rule_key, score, figures, explanation)",
                [
                    value
                    for h in hits
                    for value in (
                        h["rule_id"],
                        h["rule_key"],
                        h["score"],
                        json.dumps(h["figures"]),
                        h["explanation"],
                    )
                ],
            )
        )
    history = _history_upsert(r)
    if history is not None:
        parts.append(("history", *history))
    statement = "WITH " + ", ".join(f"{name} AS ({sql})" for name, sql, _ in parts)
    row = fetch_one(
        statement + " SELECT id FROM evaluation",  # noqa: S608  # nosec B608
        [value for _, _, params in parts for value in params],
    )
    return int(row[0])


def _statement_each(r: Recording, evaluation: dict[str, Any]) -> int:
    if r.store_signal:
        FraudSignal.objects.create(**_signal_row(r))
    evaluation_id = FraudEvaluation.objects.create(**evaluation).pk
    FraudRuleHit.objects.bulk_create(
        FraudRuleHit(evaluation_id=evaluation_id, **hit) for hit in _hit_rows(r)
    )
    history = _history_upsert(r)
    if history is not None:
        with connection.cursor() as cursor:
            cursor.execute(*history)
    return evaluation_id


def evaluation_store(recording: Recording) -> FraudEvaluation:
    """Store the scoring in the caller's transaction; the evaluation as stored."""
    row = _evaluation_row(recording, timezone.now())
    if connection.vendor == "postgresql":
        evaluation_id = _one_statement(recording, row)
    else:
        evaluation_id = _statement_each(recording, row)
    evaluation = FraudEvaluation(id=evaluation_id, **row)
    evaluation._state.adding = False
    evaluation._state.db = connection.alias
    return evaluation
