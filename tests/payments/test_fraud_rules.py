"""The fraud rules engine: each check fires on a crafted sequence and stays quiet on an ordinary
one; the explanation names the rule and its figures; rules are versioned data that only
compliance officers write; a bad rule is refused and writes nothing."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import time_machine
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from audits import context
from payments.fraud.checks import FraudRuleInvalid
from payments.fraud.models import (
    FraudAlert,
    FraudEvaluation,
    FraudRule,
    FraudRuleHit,
    FraudSignal,
    MerchantAmountStats,
)
from payments.fraud.services import FraudPermissionRefused, fraud_rule_change, fraud_rule_create
from payments.models import ApprovalRequest, Merchant, Payment, Refund
from payments.services.payments import payment_record, payment_set_status
from payments.services.refunds import refund_create, refund_request
from tests.helpers import row_counts
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

T0 = datetime.datetime(2026, 11, 2, 12, 0, tzinfo=datetime.UTC)


def rule(officer: User, rule_key: str, kind: str, /, score: int = 30, **params: Any) -> FraudRule:
    return fraud_rule_create(
        key=rule_key, name=rule_key.replace("-", " ").capitalize(), kind=kind, params=params,
        score=score, actor=officer,
    )  # fmt: skip


def pay(merchant: Merchant, amount: int = 5_000, **kw: Any) -> Payment:
    kw.setdefault("customer_email", "someone@example.com")
    return payment_record(merchant=merchant, gateway="stripe", amount=amount, currency="EUR", **kw)


def captured(merchant: Merchant, amount: int = 5_000, **kw: Any) -> Payment:
    payment = pay(merchant, amount, **kw)
    return payment_set_status(payment=payment, status=Payment.Status.CAPTURED)


def last_hits(payment: Payment) -> list[FraudRuleHit]:
    evaluation = FraudEvaluation.objects.filter(payment=payment).order_by("-pk").first()
    assert evaluation is not None
    return list(evaluation.hits.all())


def test_every_payment_is_evaluated_and_counted_even_when_nothing_fires(officer: User) -> None:
    rule(officer, "card-burst", "velocity_count", subject="payment", key="card",
         window_minutes=60, max_count=3)  # fmt: skip
    payment = pay(MerchantFactory(), card_fingerprint="fp_1")
    evaluation = FraudEvaluation.objects.get(payment=payment)
    assert (evaluation.score, evaluation.outcome, evaluation.rules_checked) == (0, "passed", 1)
    assert not evaluation.hits.exists()
    signal = FraudSignal.objects.get(payment=payment)
    assert (signal.kind, signal.card, signal.amount) == ("payment", "fp_1", 5_000)
    # The email is counted by its blind index, never in clear.
    assert signal.email and "@" not in signal.email


def test_card_velocity_fires_on_the_fourth_payment_in_the_hour_and_names_its_figures(
    officer: User,
) -> None:
    rule(officer, "card-burst", "velocity_count", subject="payment", key="card",
         window_minutes=60, max_count=3)  # fmt: skip
    merchant = MerchantFactory()
    with time_machine.travel(T0, tick=False):
        first = pay(merchant, card_fingerprint="fp_stolen")
    for minutes in (10, 20):
        with time_machine.travel(T0 + datetime.timedelta(minutes=minutes), tick=False):
            quiet = pay(merchant, card_fingerprint="fp_stolen")
    assert last_hits(first) == [] and last_hits(quiet) == []
    with time_machine.travel(T0 + datetime.timedelta(minutes=30), tick=False):
        loud = pay(merchant, card_fingerprint="fp_stolen")
        other_card = pay(merchant, card_fingerprint="fp_honest")
    [hit] = last_hits(loud)
    assert hit.rule_key == "card-burst" and hit.rule.version == 1
    assert hit.figures == {"count": 4, "max_count": 3, "window_minutes": 60}
    assert hit.explanation == (
        "Card burst: 4 payments from this card in 1 hour, above the limit of 3"
    )
    assert last_hits(other_card) == []
    # Two hours on, the window has slid past them: quiet again.
    with time_machine.travel(T0 + datetime.timedelta(minutes=150), tick=False):
        assert last_hits(pay(merchant, card_fingerprint="fp_stolen")) == []


def test_email_ip_and_device_windows_count_across_merchants(officer: User) -> None:
    rule(officer, "email-burst", "velocity_count", subject="payment", key="email",
         window_minutes=1440, max_count=2)  # fmt: skip
    rule(officer, "ip-burst", "velocity_count", subject="payment", key="ip",
         window_minutes=60, max_count=2)  # fmt: skip
    rule(officer, "device-burst", "velocity_count", subject="payment", key="device",
         window_minutes=60, max_count=2)  # fmt: skip
    shops = [MerchantFactory() for _ in range(3)]
    with context.bind(source="api", ip_address="203.0.113.7", device_id="dev-1"):
        emails = ["Mule@Example.com", "mule@example.com", "MULE@example.com"]
        payments = [
            pay(shop, customer_email=email) for shop, email in zip(shops, emails, strict=True)
        ]
    assert last_hits(payments[1]) == []
    assert {h.rule_key for h in last_hits(payments[2])} == {
        "email-burst", "ip-burst", "device-burst"
    }  # fmt: skip
    # Work the system does itself (a webhook, a command) has no client address or device.
    with context.bind(source="webhook", ip_address="203.0.113.7", device_id="dev-1"):
        from_webhook = pay(shops[0], customer_email="other@example.com")
    assert last_hits(from_webhook) == []
    assert FraudSignal.objects.get(payment=from_webhook).ip == ""


def test_merchant_sum_in_a_window_fires_above_its_limit_in_the_currency(officer: User) -> None:
    rule(officer, "merchant-volume", "velocity_sum", subject="payment", key="merchant",
         window_minutes=60, max_amount=20_000)  # fmt: skip
    merchant = MerchantFactory()
    assert last_hits(pay(merchant, 10_000)) == []
    assert last_hits(pay(merchant, 10_000)) == []  # 200.00 is the limit, not above it
    [hit] = last_hits(pay(merchant, 1))
    assert hit.figures["sum"] == 20_001
    assert "total 200.01 EUR, above the limit of 200.00 EUR" in hit.explanation


def test_refund_ratio_fires_when_refunds_pass_the_share_of_payments(officer: User) -> None:
    rule(officer, "refund-ratio", "refund_ratio", window_days=30, max_ratio=0.3, min_payments=3)
    merchant = MerchantFactory()
    payments = [captured(merchant, 10_000) for _ in range(4)]
    refund_create(payment=payments[0], amount=10_000, reason="requested_by_customer")
    ordinary = Refund.objects.get()
    assert not FraudEvaluation.objects.get(refund=ordinary).hits.exists()  # 25 %
    second = refund_create(payment=payments[1], amount=5_000, reason="requested_by_customer")
    [hit] = FraudEvaluation.objects.get(refund=second).hits.all()
    assert hit.figures["ratio"] == 0.375 and hit.figures["payments"] == 4
    assert "refunds are 38% of payments by amount over 30 days" in hit.explanation


def test_pay_then_refund_fires_on_a_quick_full_refund_only(officer: User) -> None:
    rule(officer, "quick-refund", "pay_then_refund", within_minutes=60, min_fraction=0.9)
    merchant = MerchantFactory()
    with time_machine.travel(T0, tick=False):
        quick, slow, partial = (captured(merchant) for _ in range(3))
    with time_machine.travel(T0 + datetime.timedelta(minutes=20), tick=False):
        fast = refund_create(payment=quick, amount=5_000, reason="requested_by_customer")
        small = refund_create(payment=partial, amount=1_000, reason="requested_by_customer")
    with time_machine.travel(T0 + datetime.timedelta(days=2), tick=False):
        late = refund_create(payment=slow, amount=5_000, reason="requested_by_customer")
    [hit] = FraudEvaluation.objects.get(refund=fast).hits.all()
    assert hit.figures["minutes_after_payment"] == 20.0
    assert hit.explanation.startswith("Quick refund: 100% of the payment refunded 20 minutes")
    for quiet in (small, late):
        assert not FraudEvaluation.objects.get(refund=quiet).hits.exists()


def test_amount_far_above_the_merchants_history_fires_and_a_usual_one_does_not(
    officer: User,
) -> None:
    rule(officer, "odd-amount", "amount_outlier", max_z=4, min_history=20)
    merchant = MerchantFactory()
    for i in range(30):
        pay(merchant, 2_000 + (i % 7) * 300)
    stats = MerchantAmountStats.objects.get(merchant=merchant, currency="EUR")
    assert stats.count == 30
    assert last_hits(pay(merchant, 3_500)) == []
    [hit] = last_hits(pay(merchant, 250_000))
    assert hit.figures["z"] > 4 and hit.figures["history"] == 31
    assert "amount 2,500.00 EUR is" in hit.explanation and hit.explanation.endswith("above 4")


def test_a_score_over_the_alert_threshold_opens_one_alert_per_payment(officer: User) -> None:
    rule(officer, "card-burst", "velocity_count", score=60, subject="payment", key="card",
         window_minutes=60, max_count=1)  # fmt: skip
    merchant = MerchantFactory()
    pay(merchant, card_fingerprint="fp")
    hit = pay(merchant, card_fingerprint="fp")
    alert = FraudAlert.objects.get()
    assert (alert.payment, alert.score, alert.status) == (hit, 60, "open")
    assert "Card burst (+60): 2 payments from this card" in alert.summary
    assert LogEntry.objects.get_for_object(alert).exists()  # audited
    merchant.refresh_from_db()
    assert not merchant.flagged_for_review  # 60 is below the hold score (80)


def test_a_high_score_on_a_payment_flags_its_merchant(officer: User) -> None:
    rule(officer, "card-burst", "velocity_count", score=90, subject="payment", key="card",
         window_minutes=60, max_count=1)  # fmt: skip
    merchant = MerchantFactory()
    pay(merchant, card_fingerprint="fp")
    payment = pay(merchant, card_fingerprint="fp")
    merchant.refresh_from_db()
    assert merchant.flagged_for_review
    assert merchant.flag_reason.startswith(f"fraud score 90 on payment {payment.pk}: Card burst")
    assert FraudEvaluation.objects.get(payment=payment).outcome == "flagged"


def test_a_high_score_holds_a_refund_request_for_a_second_person(officer: User, ops: User) -> None:
    rule(officer, "quick-refund", "pay_then_refund", score=85, within_minutes=60, min_fraction=0.5)
    payment = captured(MerchantFactory(), 5_000)
    requested = refund_request(payment=payment, amount=4_000, reason="fraudulent", actor=ops)
    assert requested.needs_approval and not Refund.objects.exists()
    approval = ApprovalRequest.objects.get()
    because = approval.payload["needs_approval_because"]
    assert because.startswith("fraud score 85: Quick refund (+85): 80% of the payment refunded")
    evaluation = FraudEvaluation.objects.get(subject="refund_request")
    assert (evaluation.outcome, evaluation.score) == ("held", 85)
    assert FraudAlert.objects.get().evaluation == evaluation


def test_a_small_score_lets_a_refund_request_through(officer: User, ops: User) -> None:
    rule(officer, "quick-refund", "pay_then_refund", score=20, within_minutes=60, min_fraction=0.5)
    payment = captured(MerchantFactory(), 5_000)
    requested = refund_request(payment=payment, amount=4_000, reason="fraudulent", actor=ops)
    assert requested.refund is not None and not ApprovalRequest.objects.exists()
    evaluation = FraudEvaluation.objects.get(refund=requested.refund)
    assert (evaluation.score, evaluation.outcome) == (20, "passed")
    assert not FraudAlert.objects.exists()


def test_a_disabled_rule_does_not_run(officer: User) -> None:
    created = rule(officer, "card-burst", "velocity_count", subject="payment", key="card",
                   window_minutes=60, max_count=1)  # fmt: skip
    fraud_rule_change(rule=created, enabled=False, note="too noisy", actor=officer)
    merchant = MerchantFactory()
    pay(merchant, card_fingerprint="fp")
    assert FraudEvaluation.objects.filter(rules_checked=0).count() == 1
    assert last_hits(pay(merchant, card_fingerprint="fp")) == []


def test_a_change_writes_the_next_version_and_retires_the_current_one(officer: User) -> None:
    first = rule(officer, "card-burst", "velocity_count", subject="payment", key="card",
                 window_minutes=60, max_count=3)  # fmt: skip
    params = {**first.params, "max_count": 1}
    second = fraud_rule_change(rule=first, params=params, score=40, note="tighter", actor=officer)
    first.refresh_from_db()
    assert (first.is_current, second.is_current, second.version) == (False, True, 2)
    assert (second.params["max_count"], second.score, second.change_note) == (1, 40, "tighter")
    assert LogEntry.objects.get_for_object(second).exists()
    assert LogEntry.objects.get_for_object(first).count() == 2  # created, then retired
    merchant = MerchantFactory()
    pay(merchant, card_fingerprint="fp")
    [hit] = last_hits(pay(merchant, card_fingerprint="fp"))
    assert hit.rule == second


@pytest.mark.parametrize(
    ("kind", "params", "score", "message"),
    [
        ("teleport", {}, 10, "Unknown rule kind 'teleport'"),
        ("velocity_count", {"subject": "payment", "key": "card", "window_minutes": 60}, 10,
         "Parameter 'max_count' is required"),
        ("velocity_count", {"subject": "payment", "key": "shoe", "window_minutes": 60,
                            "max_count": 2}, 10, "'key' must be one of merchant, card"),
        ("velocity_count", {"subject": "payment", "key": "card", "window_minutes": 0,
                            "max_count": 2}, 10, "'window_minutes' must be at least 1"),
        ("velocity_count", {"subject": "payment", "key": "card", "window_minutes": "60",
                            "max_count": 2}, 10, "'window_minutes' must be an integer"),
        ("velocity_count", {"subject": "payment", "key": "card", "window_minutes": 60,
                            "max_count": 2, "colour": "red"}, 10, "Unknown parameter(s)"),
        ("refund_ratio", {"window_days": 30, "max_ratio": True, "min_payments": 3}, 10,
         "'max_ratio' must be a number"),
        ("pay_then_refund", {"within_minutes": 60, "min_fraction": 0.5}, 0,
         "score must be a whole number from 1 to 100"),
        ("pay_then_refund", {"within_minutes": 60, "min_fraction": 0.5}, 101,
         "score must be a whole number from 1 to 100"),
    ],
)  # fmt: skip
def test_a_bad_rule_is_refused_and_writes_nothing(
    officer: User, kind: str, params: dict[str, Any], score: int, message: str
) -> None:
    before = row_counts()
    with pytest.raises(FraudRuleInvalid, match=message.replace("(", r"\(").replace(")", r"\)")):
        fraud_rule_create(key="bad", name="Bad", kind=kind, params=params, score=score,
                          actor=officer)  # fmt: skip
    assert row_counts() == before


def test_only_compliance_officers_write_rules(officer: User, ops: User, analyst: User) -> None:
    created = rule(officer, "quick-refund", "pay_then_refund", within_minutes=60, min_fraction=0.5)
    before = row_counts()
    for person in (ops, analyst):
        with pytest.raises(FraudPermissionRefused):
            rule(person, "other", "pay_then_refund", within_minutes=60, min_fraction=0.5)
        with pytest.raises(FraudPermissionRefused):
            fraud_rule_change(rule=created, score=99, note="mine now", actor=person)
    assert row_counts() == before


def test_a_change_without_a_note_or_without_a_difference_is_refused(officer: User) -> None:
    created = rule(officer, "quick-refund", "pay_then_refund", within_minutes=60, min_fraction=0.5)
    before = row_counts()
    with pytest.raises(FraudRuleInvalid, match="Say why"):
        fraud_rule_change(rule=created, score=50, note=" ", actor=officer)
    with pytest.raises(FraudRuleInvalid, match="Nothing changed"):
        fraud_rule_change(rule=created, score=created.score, note="same", actor=officer)
    with pytest.raises(FraudRuleInvalid, match="must be at most 1"):
        fraud_rule_change(rule=created, params={**created.params, "min_fraction": 2},
                          note="oops", actor=officer)  # fmt: skip
    assert row_counts() == before


def test_scoring_a_payment_costs_a_fixed_number_of_queries(
    officer: User, django_assert_num_queries: Any
) -> None:
    rule(officer, "card-burst", "velocity_count", subject="payment", key="card",
         window_minutes=60, max_count=10)  # fmt: skip
    rule(officer, "merchant-volume", "velocity_sum", subject="payment", key="merchant",
         window_minutes=60, max_amount=10**9)  # fmt: skip
    rule(officer, "odd-amount", "amount_outlier", max_z=4, min_history=20)
    merchant = MerchantFactory()
    for _ in range(5):
        pay(merchant, card_fingerprint="fp")
    from payments.fraud.engine import fraud_score_payment

    payment = Payment.objects.select_related("merchant").order_by("-pk").first()
    assert payment is not None
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 4):
        # the rules' stamp (the rules kept from the last payment), the amount history and
        # both windows (the card's count, the merchant's sum) in one statement; the signal,
        # the evaluation and the amount history's update in another (on SQLite a statement
        # each); no open-alert check (no hit)
        fraud_score_payment(payment=payment, card_fingerprint="fp")
    assert timezone.now()


def test_over_the_api_the_card_fingerprint_ip_and_device_are_counted(
    officer: User, local_stripe: Any
) -> None:
    from tests.api.conftest import client_for, issue

    integration_user = User.objects.create_user("integration")
    rule(officer, "card-burst", "velocity_count", subject="payment", key="card",
         window_minutes=60, max_count=1)  # fmt: skip
    rule(officer, "device-burst", "velocity_count", subject="payment", key="device",
         window_minutes=60, max_count=1)  # fmt: skip
    merchant = MerchantFactory()
    raw = issue(integration_user, ["payments:read", "payments:write"], merchant=merchant)
    body = {"amount": 2_500, "currency": "eur", "payment_method": "pm_card_visa",
            "gateway": "stripe", "card_fingerprint": "Xt5EWLLDS7FJjR1c"}  # fmt: skip
    for key in ("order-1", "order-2"):
        client = client_for(raw, HTTP_IDEMPOTENCY_KEY=key, HTTP_X_DEVICE_ID="till-7")
        assert client.post("/api/v1/payments/", body, format="json").status_code == 201
    second = Payment.objects.order_by("-pk").first()
    assert second is not None
    assert {h.rule_key for h in last_hits(second)} == {"card-burst", "device-burst"}
    signal = FraudSignal.objects.get(payment=second)
    assert signal.ip == "127.0.0.1" and signal.device and signal.device != "till-7"


def test_over_the_api_a_malformed_card_fingerprint_is_400_and_writes_nothing() -> None:
    from tests.api.conftest import client_for, issue

    integration_user = User.objects.create_user("integration")
    merchant = MerchantFactory()
    raw = issue(integration_user, ["payments:read", "payments:write"], merchant=merchant)
    client = client_for(raw, HTTP_IDEMPOTENCY_KEY="order-x")
    before = row_counts()
    body = {"amount": 2_500, "currency": "eur", "payment_method": "pm_card_visa",
            "card_fingerprint": "4242 4242 4242 4242"}  # fmt: skip
    response = client.post("/api/v1/payments/", body, format="json")
    assert response.status_code == 400
    assert "card_fingerprint" in response.json()["errors"]
    assert row_counts() == before
