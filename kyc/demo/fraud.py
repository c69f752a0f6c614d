"""Starter fraud rules, written by a compliance officer through the rules service after the
history is loaded: payments taken from then on are scored, and a dry run on a rule's page shows
what it would have fired on over the demo's 90 days. Scores stay below FRAUD_HOLD_SCORE, so no
refund of the demo is held by them."""

from __future__ import annotations

from typing import Any

from payments.fraud.services import fraud_rule_create

STARTER_RULES: list[dict[str, Any]] = [
    {
        "key": "card-burst",
        "name": "Card burst",
        "kind": "velocity_count",
        "score": 40,
        "params": {"subject": "payment", "key": "card", "window_minutes": 60, "max_count": 3},
    },
    {
        "key": "email-burst",
        "name": "Customer email burst",
        "kind": "velocity_count",
        "score": 30,
        "params": {"subject": "payment", "key": "email", "window_minutes": 60, "max_count": 5},
    },
    {
        "key": "quick-refund",
        "name": "Paid then refunded within two hours",
        "kind": "pay_then_refund",
        "score": 50,
        "params": {"within_minutes": 120, "min_fraction": 0.9},
    },
    {
        "key": "odd-amount",
        "name": "Amount far from the merchant's history",
        "kind": "amount_outlier",
        "score": 30,
        "params": {"max_z": 4, "min_history": 20},
    },
]


def load_fraud_rules(users: dict[str, Any]) -> int:
    for rule in STARTER_RULES:
        fraud_rule_create(
            **rule, note="Starter rule of the demo; tune it and dry-run it", actor=users["officer"]
        )
    return len(STARTER_RULES)
