"""The fixed catalogue of checks a rule can use, each with the parameters it takes.

A check looks at one candidate (a payment or refund being created, or one replayed by the dry
run) and answers a Finding (its figures and a sentence naming them) or None. Windows count the
signals of one key in (at - window, at]: one range scan of a (key, kind, time) index, so the
cost per candidate does not grow with the stored history, only with what falls in the window.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

from ..core.errors import DomainError
from ..core.money import format_minor
from .models import FraudSignal, MerchantAmountStats, RuleKind, SignalKind


class FraudRuleInvalid(DomainError):
    """A rule whose kind or parameters the catalogue does not accept."""


@dataclass(frozen=True)
class Candidate:
    """A payment or refund as the checks see it. `signal_id` is set when it is already stored
    (the dry run), so its own row is not counted twice."""

    kind: str
    merchant_id: int
    payment_id: int
    currency: str
    amount: int
    at: datetime.datetime
    card: str = ""
    email: str = ""
    ip: str = ""
    device: str = ""
    signal_id: int | None = None
    payment_at: datetime.datetime | None = None  # refunds: when the payment was made
    payment_amount: int | None = None  # refunds: the payment's amount
    # The merchant's amount history when the caller read it already: (count, mean, m2) of
    # log(amount). None: amount_outlier reads it.
    amount_history: tuple[int, float, float] | None = None


# What a candidate and its stored signal (FraudSignal) both hold, under the same names.
SIGNAL_FIELDS = (
    "kind",
    "merchant_id",
    "payment_id",
    "currency",
    "amount",
    "at",
    "card",
    "email",
    "ip",
    "device",
)


@dataclass(frozen=True)
class Finding:
    figures: dict[str, Any]
    explanation: str


@dataclass(frozen=True)
class Param:
    kind: type
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class Check:
    kind: str
    params: dict[str, Param]
    run: Callable[[Candidate, dict[str, Any]], Finding | None]
    summary: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


KEYS = ("merchant", "card", "email", "ip", "device")
KEY_LABELS = {
    "merchant": "this merchant",
    "card": "this card",
    "email": "this customer email",
    "ip": "this IP address",
    "device": "this device",
}
SUBJECTS = tuple(SignalKind.values)


# The window's key column (a fixed whitelist: no name from a rule reaches the SQL).
_KEY_COLUMNS = {
    "merchant": "merchant_id",
    "card": "card",
    "email": "email",
    "ip": "ip",
    "device": "device",
}


def window_sql(c: Candidate, p: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """A velocity rule's measure as one scalar SQL query over the (key, kind, at) index: the
    count, or the sum in the candidate's currency, of the key's signals in (at - window, at].
    None when the rule does not apply (another subject, or the candidate has no such key).
    The engine runs every rule's query as one statement; a single check runs its own."""
    if c.kind != p["subject"]:
        return None
    key = p["key"]
    value: Any = c.merchant_id if key == "merchant" else getattr(c, key)
    if not value:
        return None
    since = c.at - datetime.timedelta(minutes=p["window_minutes"])
    table = FraudSignal._meta.db_table
    measure = "COUNT(*)" if "max_count" in p else "COALESCE(SUM(amount), 0)"
    column = _KEY_COLUMNS[key]
    where = f"{column} = %s AND kind = %s AND at > %s AND at <= %s"
    if key != "merchant":
        # The partial index's own predicate, stated so that a prepared statement's generic
        # plan (which cannot see the value) still uses that index.
        where += f" AND {column} <> ''"
    params: list[Any] = [value, p["subject"], since, c.at]
    if "max_amount" in p:
        where += " AND currency = %s"
        params.append(c.currency)
    if c.signal_id is not None:
        where += " AND id <> %s"
        params.append(c.signal_id)
    sql = f"SELECT {measure} FROM {table} WHERE {where}"  # noqa: S608  # nosec B608
    return sql, params


def _measure(c: Candidate, p: dict[str, Any]) -> int | None:
    query = window_sql(c, p)
    if query is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(*query)
        return int(cursor.fetchone()[0])


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _duration(minutes: int) -> str:
    if minutes % 1440 == 0:
        return _plural(minutes // 1440, "day")
    if minutes % 60 == 0:
        return _plural(minutes // 60, "hour")
    return _plural(minutes, "minute")


def judge_count(c: Candidate, p: dict[str, Any], stored: int) -> Finding | None:
    count = stored + 1  # with the candidate itself
    if count <= p["max_count"]:
        return None
    return Finding(
        {"count": count, "max_count": p["max_count"], "window_minutes": p["window_minutes"]},
        f"{_plural(count, p['subject'])} from {KEY_LABELS[p['key']]} in "
        f"{_duration(p['window_minutes'])}, above the limit of {p['max_count']}",
    )


def judge_sum(c: Candidate, p: dict[str, Any], stored: int) -> Finding | None:
    total = stored + c.amount
    if total <= p["max_amount"]:
        return None
    return Finding(
        {
            "sum": total,
            "currency": c.currency,
            "max_amount": p["max_amount"],
            "window_minutes": p["window_minutes"],
        },
        f"{p['subject']}s from {KEY_LABELS[p['key']]} in {_duration(p['window_minutes'])} "
        f"total {format_minor(total, c.currency)}, above the limit of "
        f"{format_minor(p['max_amount'], c.currency)}",
    )


def velocity_count(c: Candidate, p: dict[str, Any]) -> Finding | None:
    stored = _measure(c, p)
    return None if stored is None else judge_count(c, p, stored)


def velocity_sum(c: Candidate, p: dict[str, Any]) -> Finding | None:
    stored = _measure(c, p)
    return None if stored is None else judge_sum(c, p, stored)


def refund_ratio(c: Candidate, p: dict[str, Any]) -> Finding | None:
    if c.kind != SignalKind.REFUND:
        return None
    since = c.at - datetime.timedelta(days=p["window_days"])
    rows = FraudSignal.objects.filter(
        merchant_id=c.merchant_id, currency=c.currency, at__gt=since, at__lte=c.at
    )
    if c.signal_id is not None:
        rows = rows.exclude(pk=c.signal_id)
    totals = rows.aggregate(
        payments=Count("pk", filter=Q(kind=SignalKind.PAYMENT)),
        paid=Coalesce(Sum("amount", filter=Q(kind=SignalKind.PAYMENT)), 0),
        refunded=Coalesce(Sum("amount", filter=Q(kind=SignalKind.REFUND)), 0),
    )
    refunded = totals["refunded"] + c.amount
    if totals["payments"] < p["min_payments"] or not totals["paid"]:
        return None
    ratio = refunded / totals["paid"]
    if ratio <= p["max_ratio"]:
        return None
    return Finding(
        {
            "ratio": round(ratio, 4),
            "refunded": refunded,
            "paid": totals["paid"],
            "payments": totals["payments"],
            "currency": c.currency,
            "max_ratio": p["max_ratio"],
            "window_days": p["window_days"],
        },
        f"refunds are {ratio:.0%} of payments by amount over {_plural(p['window_days'], 'day')} "
        f"({format_minor(refunded, c.currency)} of {format_minor(totals['paid'], c.currency)}, "
        f"{_plural(totals['payments'], 'payment')}), above {p['max_ratio']:.0%}",
    )


def pay_then_refund(c: Candidate, p: dict[str, Any]) -> Finding | None:
    if c.kind != SignalKind.REFUND or c.payment_at is None or not c.payment_amount:
        return None
    minutes = (c.at - c.payment_at).total_seconds() / 60
    fraction = c.amount / c.payment_amount
    if minutes > p["within_minutes"] or fraction < p["min_fraction"]:
        return None
    return Finding(
        {
            "minutes_after_payment": round(minutes, 1),
            "within_minutes": p["within_minutes"],
            "fraction": round(fraction, 4),
            "min_fraction": p["min_fraction"],
        },
        f"{fraction:.0%} of the payment refunded {minutes:.0f} minutes after it was made, "
        f"within {_duration(p['within_minutes'])}",
    )


def amount_outlier(c: Candidate, p: dict[str, Any]) -> Finding | None:
    """z-score of log(amount) against the merchant's rolling history in the currency."""
    if c.kind != SignalKind.PAYMENT:
        return None
    history = c.amount_history
    if history is None:
        stats = MerchantAmountStats.objects.filter(
            merchant_id=c.merchant_id, currency=c.currency
        ).first()
        history = (stats.count, stats.mean_log, stats.m2_log) if stats else (0, 0.0, 0.0)
    count, mean_log, m2_log = history
    if count < max(p["min_history"], 2):
        return None
    std = math.sqrt(m2_log / (count - 1))
    if std <= 0:
        std = 1e-9
    z = (math.log(c.amount) - mean_log) / std
    if z <= p["max_z"]:
        return None
    typical = round(math.exp(mean_log))
    return Finding(
        {
            "z": round(z, 2),
            "max_z": p["max_z"],
            "typical_amount": typical,
            "currency": c.currency,
            "history": count,
        },
        f"amount {format_minor(c.amount, c.currency)} is {z:.1f} standard deviations above this "
        f"merchant's usual ({format_minor(typical, c.currency)} typical over "
        f"{_plural(count, 'payment')}), above {p['max_z']:g}",
    )


_WINDOW = Param(int, 1, 90 * 1440, help="minutes")
_KEY = Param(str, choices=KEYS, help="whose events are counted")
_SUBJECT = Param(str, choices=SUBJECTS, help="payments or refunds")

CATALOGUE: dict[str, Check] = {
    RuleKind.VELOCITY_COUNT: Check(
        RuleKind.VELOCITY_COUNT,
        {
            "subject": _SUBJECT,
            "key": _KEY,
            "window_minutes": _WINDOW,
            "max_count": Param(int, 1, 1_000_000, help="fires above this count"),
        },
        velocity_count,
        "fires when more than max_count payments (or refunds) share the key in the window",
    ),
    RuleKind.VELOCITY_SUM: Check(
        RuleKind.VELOCITY_SUM,
        {
            "subject": _SUBJECT,
            "key": _KEY,
            "window_minutes": _WINDOW,
            "max_amount": Param(int, 1, 10**15, help="minor units, in the candidate's currency"),
        },
        velocity_sum,
        "fires when their sum in the candidate's currency passes max_amount (minor units)",
    ),
    RuleKind.REFUND_RATIO: Check(
        RuleKind.REFUND_RATIO,
        {
            "window_days": Param(int, 1, 90),
            "max_ratio": Param(float, 0, 10),
            "min_payments": Param(int, 1, 1_000_000, help="too few payments: no judgement"),
        },
        refund_ratio,
        "on a refund: the merchant's refunds over its payments by amount in the window",
    ),
    RuleKind.PAY_THEN_REFUND: Check(
        RuleKind.PAY_THEN_REFUND,
        {
            "within_minutes": Param(int, 1, 30 * 1440),
            "min_fraction": Param(float, 0, 1, help="share of the payment refunded"),
        },
        pay_then_refund,
        "on a refund: at least min_fraction of the payment refunded within the minutes",
    ),
    RuleKind.AMOUNT_OUTLIER: Check(
        RuleKind.AMOUNT_OUTLIER,
        {
            "max_z": Param(float, 0.5, 50, help="standard deviations of log(amount)"),
            "min_history": Param(int, 2, 1_000_000, help="payments needed before judging"),
        },
        amount_outlier,
        "on a payment: log(amount) more than max_z standard deviations above the merchant's",
    ),
}


def validate_params(kind: str, params: Any) -> dict[str, Any]:
    """The parameters cleaned for the kind; FraudRuleInvalid naming what is wrong."""
    check = CATALOGUE.get(kind)
    if check is None:
        raise FraudRuleInvalid(f"Unknown rule kind '{kind}'.")
    if not isinstance(params, dict):
        raise FraudRuleInvalid("The parameters must be a JSON object.")
    unknown = sorted(set(params) - set(check.params))
    if unknown:
        raise FraudRuleInvalid(
            f"Unknown parameter(s) for {kind}: {', '.join(unknown)} "
            f"(it takes {', '.join(check.params)})."
        )
    cleaned: dict[str, Any] = {}
    for name, spec in check.params.items():
        if name not in params:
            raise FraudRuleInvalid(f"Parameter '{name}' is required for {kind}.")
        value = params[name]
        if spec.kind is str:
            if not isinstance(value, str) or value not in spec.choices:
                raise FraudRuleInvalid(f"'{name}' must be one of {', '.join(spec.choices)}.")
        else:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if not numeric or (spec.kind is int and not float(value).is_integer()):
                raise FraudRuleInvalid(
                    f"'{name}' must be a{'n integer' if spec.kind is int else ' number'}."
                )
            value = spec.kind(value)
            if not math.isfinite(value):
                raise FraudRuleInvalid(f"'{name}' must be a finite number.")
            if spec.minimum is not None and value < spec.minimum:
                raise FraudRuleInvalid(f"'{name}' must be at least {spec.minimum:g}.")
            if spec.maximum is not None and value > spec.maximum:
                raise FraudRuleInvalid(f"'{name}' must be at most {spec.maximum:g}.")
        cleaned[name] = value
    return cleaned


def run_check(kind: str, candidate: Candidate, params: dict[str, Any]) -> Finding | None:
    return CATALOGUE[kind].run(candidate, params)


# Checks whose measure is one scalar query (window_sql), judged by these.
WINDOW_JUDGES: dict[str, Callable[[Candidate, dict[str, Any], int], Finding | None]] = {
    RuleKind.VELOCITY_COUNT: judge_count,
    RuleKind.VELOCITY_SUM: judge_sum,
}
