"""Reads for the fraud screens: the alert queue, an alert with its explanation, the rules with
the precision their closed alerts measured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from .models import AlertStatus, FraudAlert, FraudRule, FraudRuleHit


def fraud_alert_queue(*, status: str = AlertStatus.OPEN) -> QuerySet[FraudAlert]:
    return FraudAlert.objects.filter(status=status).select_related(
        "merchant", "payment", "assignee", "evaluation"
    )


def fraud_alert_detail(*, pk: int) -> FraudAlert:
    return FraudAlert.objects.select_related(
        "merchant", "payment", "assignee", "closed_by", "evaluation"
    ).get(pk=pk)


def fraud_alert_hits(*, alert: FraudAlert) -> QuerySet[FraudRuleHit]:
    return FraudRuleHit.objects.filter(evaluation_id=alert.evaluation_id).select_related("rule")


@dataclass(frozen=True)
class RulePrecision:
    rule: FraudRule
    fired: int
    fraud: int
    false_positive: int

    @property
    def precision(self) -> float | None:
        closed = self.fraud + self.false_positive
        return self.fraud / closed if closed else None


def fraud_rules_with_precision() -> list[RulePrecision]:
    """Each rule's current version, with how often any version fired and, of the alerts
    closed, the share closed as fraud (its measured precision). Two queries."""
    rules = list(FraudRule.objects.filter(is_current=True).select_related("created_by"))
    counts: dict[str, dict[str, Any]] = {
        row["rule_key"]: dict(row)
        for row in FraudRuleHit.objects.values("rule_key").annotate(
            fired=Count("pk"),
            fraud=Count("pk", filter=Q(evaluation__alert__status=AlertStatus.FRAUD)),
            false_positive=Count(
                "pk", filter=Q(evaluation__alert__status=AlertStatus.FALSE_POSITIVE)
            ),
        )
    }
    return [
        RulePrecision(
            rule,
            counts.get(rule.key, {}).get("fired", 0),
            counts.get(rule.key, {}).get("fraud", 0),
            counts.get(rule.key, {}).get("false_positive", 0),
        )
        for rule in rules
    ]


def fraud_reviewers() -> QuerySet[Any]:
    """Active staff who may be given an alert (they hold the review permission)."""
    from django.contrib.auth.models import User

    by_group = Q(
        groups__permissions__codename="review_fraudalert",
        groups__permissions__content_type__app_label="payments",
    )
    direct = Q(
        user_permissions__codename="review_fraudalert",
        user_permissions__content_type__app_label="payments",
    )
    return (
        User.objects.filter(by_group | direct | Q(is_superuser=True), is_active=True, is_staff=True)
        .distinct()
        .order_by("username")
    )


def fraud_rule_versions(*, key: str) -> QuerySet[FraudRule]:
    return FraudRule.objects.filter(key=key).select_related("created_by").order_by("-version")


def fraud_evaluations_for_payment(*, payment_id: int) -> QuerySet[Any]:
    from .models import FraudEvaluation

    return (
        FraudEvaluation.objects.filter(payment_id=payment_id)
        .prefetch_related("hits")
        .order_by("-created_at", "-pk")
    )
