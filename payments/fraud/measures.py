"""What scoring one candidate reads, in one statement: the live rule set's stamp, the
merchant's amount history (payments) and every window rule's measure.

The live rules are kept per process and read again only when the stamp changes. Rules are
versioned data: every creation or change writes a new row (services.py), so the row count, the
newest id and the newest creation time change with each of them; the sum of the live ids
also sees a version retired or disabled in place. A stamp read in the same statement as the
windows means a stale rule set is never used: the candidate is measured again with the rules
just read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .checks import WINDOW_JUDGES, Candidate, window_sql
from .models import FraudRule, MerchantAmountStats
from .statements import fetch_one

Stamp = tuple[Any, ...]


@dataclass(frozen=True)
class RuleSet:
    stamp: Stamp
    rules: tuple[FraudRule, ...]


@dataclass(frozen=True)
class Measured:
    rules: tuple[FraudRule, ...]
    # (rule, stored count or sum) of each window rule that applies to the candidate
    windows: list[tuple[FraudRule, int]]
    history: tuple[int, float, float] | None


_STAMP_COLUMNS = 4
_cached = RuleSet(stamp=(), rules=())


def _stamp_sql() -> str:
    table = FraudRule._meta.db_table
    live = "COALESCE(SUM(CASE WHEN is_current AND enabled THEN id ELSE 0 END), 0)"
    return (
        "SELECT COUNT(*) AS versions, MAX(id) AS newest_id, MAX(created_at) AS newest_at, "  # noqa: S608  # nosec B608
        f"{live} AS live_ids FROM {table}"
    )


def _statement(
    candidate: Candidate, rules: tuple[FraudRule, ...], history: bool
) -> tuple[str, list[Any], list[FraudRule]]:
    columns = ["r.versions", "r.newest_id", "r.newest_at", "r.live_ids"]
    if history:
        columns += ["h.count", "h.mean_log", "h.m2_log"]
    params: list[Any] = []
    windowed = []
    for rule in rules:
        query = window_sql(candidate, rule.params) if rule.kind in WINDOW_JUDGES else None
        if query is not None:
            columns.append(f"({query[0]})")
            params += query[1]
            windowed.append(rule)
    sql = f"SELECT {', '.join(columns)} FROM ({_stamp_sql()}) r"  # noqa: S608  # nosec B608
    if history:
        sql += f" LEFT JOIN {MerchantAmountStats._meta.db_table} h"
        sql += " ON h.merchant_id = %s AND h.currency = %s"
        params += [candidate.merchant_id, candidate.currency]
    return sql, params, windowed


def _run(
    candidate: Candidate, rules: tuple[FraudRule, ...], history: bool
) -> tuple[tuple[Any, ...], list[FraudRule]]:
    sql, params, windowed = _statement(candidate, rules, history)
    return fetch_one(sql, params), windowed


def live_rules_load(stamp: Stamp) -> RuleSet:
    global _cached
    rules = tuple(FraudRule.objects.filter(is_current=True, enabled=True).order_by("key"))
    _cached = RuleSet(stamp=stamp, rules=rules)
    return _cached


def measure(candidate: Candidate, *, history: bool) -> Measured:
    """The candidate's measures under the live rules; `history`: read the merchant's amount
    history too. One statement while the rules are unchanged; after a change, two more (the
    rules, then the measures again)."""
    rule_set = _cached
    row, windowed = _run(candidate, rule_set.rules, history)
    stamp = tuple(row[:_STAMP_COLUMNS])
    if stamp != rule_set.stamp:
        rule_set = live_rules_load(stamp)
        row, windowed = _run(candidate, rule_set.rules, history)
    rest = row[_STAMP_COLUMNS:]
    amounts = None
    if history:
        count, mean_log, m2_log = rest[:3]
        amounts = (int(count or 0), float(mean_log or 0.0), float(m2_log or 0.0))
        rest = rest[3:]
    windows = [(rule, int(stored)) for rule, stored in zip(windowed, rest, strict=True)]
    return Measured(rule_set.rules, windows, amounts)
