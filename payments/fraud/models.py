"""Rules as data, the signals their windows count, evaluations and alerts.

A rule is never edited in place: a change writes the next version and retires the current one,
so every evaluation names the exact version (and its parameters) that fired.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from audits.modelling import AuthoredNote, Created, choice_valid, not_blank, optional_user
from audits.querysets import AuditedModel


class RuleKind(models.TextChoices):
    """The fixed catalogue of checks (payments/fraud/checks.py); a rule picks one and sets
    its parameters."""

    VELOCITY_COUNT = "velocity_count", "Count in a sliding window"
    VELOCITY_SUM = "velocity_sum", "Sum in a sliding window"
    REFUND_RATIO = "refund_ratio", "Refund-to-payment ratio"
    PAY_THEN_REFUND = "pay_then_refund", "Refund soon after the payment"
    AMOUNT_OUTLIER = "amount_outlier", "Amount far from the merchant's history"


class SignalKind(models.TextChoices):
    PAYMENT = "payment"
    REFUND = "refund"


class FraudRule(Created, AuditedModel):
    """One version of a rule. `key` names the rule across its versions; exactly one version
    of a key is current. Parameters are validated against the check's schema by the service."""

    key = models.SlugField(max_length=64, help_text="names the rule across its versions")
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=RuleKind.choices)
    params = models.JSONField(default=dict, help_text="the check's parameters (validated)")
    score = models.PositiveSmallIntegerField(help_text="added to the evaluation's score (1-100)")
    enabled = models.BooleanField(default=True)
    change_note = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey("auth.User", models.PROTECT, related_name="+")

    class Meta(AuditedModel.Meta):
        ordering = ["key", "-version"]
        permissions = [("review_fraudalert", "Can review fraud alerts (assign, note, close)")]
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="fraud_rule_key_version"),
            models.UniqueConstraint(
                fields=["key"], condition=Q(is_current=True), name="fraud_rule_one_current"
            ),
            choice_valid("kind", RuleKind, "fraud_rule_kind_valid"),
            models.CheckConstraint(
                condition=Q(score__gte=1, score__lte=100), name="fraud_rule_score_1_100"
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="fraud_rule_version_from_1"),
        ]
        indexes = [
            models.Index(
                fields=["key"], condition=Q(is_current=True, enabled=True), name="fraud_rule_live"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"


def _optional_key_index(key: str) -> models.Index:
    """A window's index over a key a signal may lack: only the rows that have it."""
    return models.Index(
        fields=[key, "kind", "at"],
        include=["amount"],
        condition=~Q(**{key: ""}),
        name=f"fraud_sig_{key}",
    )


class FraudSignal(models.Model):
    """What the windows count: one row per payment and per refund, written in its creating
    transaction. Keys are hashed (the customer's email as a blind index, like the merchant's
    contact email), so this table holds no personal data in clear. Derived data, not audited:
    every payment and refund it describes is."""

    kind = models.CharField(max_length=8, choices=SignalKind.choices)
    merchant = models.ForeignKey("payments.Merchant", models.CASCADE, related_name="+")
    payment = models.ForeignKey("payments.Payment", models.CASCADE, related_name="+")
    refund = models.ForeignKey(
        "payments.Refund", models.CASCADE, null=True, blank=True, related_name="+"
    )
    currency = models.CharField(max_length=3)
    amount = models.PositiveBigIntegerField(help_text="minor units")
    card = models.CharField(max_length=64, blank=True, help_text="gateway's card fingerprint")
    email = models.CharField(max_length=64, blank=True, help_text="blind index of the email")
    ip = models.CharField(max_length=45, blank=True, help_text="client address")
    device = models.CharField(max_length=64, blank=True, help_text="device fingerprint")
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-pk"]
        constraints = [
            choice_valid("kind", SignalKind, "fraud_signal_kind_valid"),
            models.CheckConstraint(
                condition=Q(kind="payment", refund__isnull=True)
                | Q(kind="refund", refund__isnull=False),
                name="fraud_signal_refund_iff_kind",
            ),
        ]
        # Each window is one range scan of one of these (key, kind, time) indexes; the amount
        # rides in the index on PostgreSQL so sums are index-only.
        indexes = [
            models.Index(
                fields=["merchant", "kind", "at"], include=["amount"], name="fraud_sig_merchant"
            ),
            *(_optional_key_index(key) for key in ("card", "email", "ip", "device")),
            models.Index(fields=["at"], name="fraud_sig_at"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} signal {self.pk}"


class MerchantAmountStats(models.Model):
    """A rolling mean and variance of log(amount) of a merchant's payments in one currency
    (Welford's update: constant cost per payment, no scan of the history). Updated under the
    merchant's row lock that creating a payment holds."""

    merchant = models.ForeignKey("payments.Merchant", models.CASCADE, related_name="+")
    currency = models.CharField(max_length=3)
    count = models.PositiveBigIntegerField(default=0)
    mean_log = models.FloatField(default=0.0)
    m2_log = models.FloatField(default=0.0, help_text="sum of squared deviations of log amount")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "currency"], name="merchant_amount_stats_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"amount history of merchant {self.merchant_id} in {self.currency}"


class EvaluationSubject(models.TextChoices):
    PAYMENT = "payment"
    REFUND = "refund"
    REFUND_REQUEST = "refund_request", "Refund request"


class EvaluationOutcome(models.TextChoices):
    PASSED = "passed"
    ALERTED = "alerted"
    HELD = "held", "Held for approval"
    FLAGGED = "flagged", "Merchant flagged"


class FraudEvaluation(Created):
    """One scoring of a payment, a refund or a refund request: its total score, what it led
    to, and (in its hits) which rule versions fired with their figures. Written once, in the
    transaction of what it scored; not audited (the alert it may raise is)."""

    subject = models.CharField(max_length=16, choices=EvaluationSubject.choices)
    merchant = models.ForeignKey("payments.Merchant", models.CASCADE, related_name="+")
    payment = models.ForeignKey("payments.Payment", models.CASCADE, related_name="+")
    refund = models.ForeignKey(
        "payments.Refund", models.CASCADE, null=True, blank=True, related_name="+"
    )
    score = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=8, choices=EvaluationOutcome.choices)
    rules_checked = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(score__lte=100), name="fraud_eval_score_max_100"),
            choice_valid("subject", EvaluationSubject, "fraud_eval_subject_valid"),
            choice_valid("outcome", EvaluationOutcome, "fraud_eval_outcome_valid"),
        ]
        indexes = [
            models.Index(fields=["payment", "-created_at"], name="fraud_eval_payment"),
            models.Index(fields=["merchant", "-created_at"], name="fraud_eval_merchant"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} evaluation {self.pk}: {self.score}"


class FraudRuleHit(models.Model):
    """A rule version that fired in an evaluation, with the figures that made it fire and the
    sentence a person reads."""

    evaluation = models.ForeignKey(FraudEvaluation, models.CASCADE, related_name="hits")
    rule = models.ForeignKey(FraudRule, models.PROTECT, related_name="hits")
    rule_key = models.SlugField(max_length=64)
    score = models.PositiveSmallIntegerField()
    figures = models.JSONField(default=dict)
    explanation = models.CharField(max_length=500)

    class Meta:
        ordering = ["evaluation", "-score", "pk"]
        indexes = [models.Index(fields=["rule_key"], name="fraud_hit_rule_key")]

    def __str__(self) -> str:
        return self.explanation


class AlertStatus(models.TextChoices):
    OPEN = "open"
    FRAUD = "fraud", "Closed: fraud"
    FALSE_POSITIVE = "false_positive", "Closed: false positive"


class FraudAlert(Created, AuditedModel):
    """An evaluation whose score reached FRAUD_ALERT_SCORE, waiting in the review queue. Its
    closure (fraud or false positive) is what each fired rule's precision is measured by."""

    Status = AlertStatus

    evaluation = models.OneToOneField(FraudEvaluation, models.PROTECT, related_name="alert")
    merchant = models.ForeignKey("payments.Merchant", models.PROTECT, related_name="+")
    payment = models.ForeignKey("payments.Payment", models.PROTECT, related_name="+")
    score = models.PositiveSmallIntegerField()
    summary = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    assignee = optional_user()
    closed_by = optional_user()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta(AuditedModel.Meta):
        ordering = ["-created_at", "-pk"]
        constraints = [
            choice_valid("status", AlertStatus, "fraud_alert_status_valid"),
            models.CheckConstraint(
                condition=Q(status="open", closed_at__isnull=True, closed_by__isnull=True)
                | (~Q(status="open") & Q(closed_at__isnull=False, closed_by__isnull=False)),
                name="fraud_alert_closed_names_who",
            ),
            models.UniqueConstraint(
                fields=["payment"], condition=Q(status="open"), name="fraud_alert_one_open_per_pay"
            ),
            models.CheckConstraint(
                condition=Q(closed_at__isnull=True) | Q(closed_at__gte=F("created_at")),
                name="fraud_alert_closed_after_created",
            ),
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="fraud_alert_queue")]

    def __str__(self) -> str:
        return f"Fraud alert {self.pk} (score {self.score})"


class FraudAlertNote(AuthoredNote, AuditedModel):
    alert = models.ForeignKey(FraudAlert, models.PROTECT, related_name="notes")

    class Meta(AuditedModel.Meta):
        ordering = ["created_at", "pk"]
        constraints = [
            not_blank("text", "fraud_alert_note_not_empty"),
        ]

    def __str__(self) -> str:
        return f"note on alert {self.alert_id}"
