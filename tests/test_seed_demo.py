"""`manage.py seed_demo`: the demo shows the product (issue 12, point 2), loads once, and every
row was written by the services (the audit chains verify)."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from audits import roles
from kyc.models import KYC_SECOND_APPROVAL, KycCase, ScreeningResult
from payments.models import (
    ApprovalRequest,
    Chargeback,
    Merchant,
    Payment,
    Refund,
    SandboxObject,
)
from payments.overview import chargeback_ratios_for_month
from payments.services.refunds import REFUND_APPROVAL
from payments.services.rollups import rollups_refresh_recent

pytestmark = pytest.mark.django_db(transaction=True)
MODELS = (Merchant, KycCase, Payment, Refund, Chargeback, User, SandboxObject, ApprovalRequest)


def test_the_demo_loads_once_and_shows_the_product(tmp_path, monkeypatch) -> None:
    """One load (about 25 s): each part of what the demo must show is checked below."""
    first, second = _load_twice(tmp_path, monkeypatch)
    _two_users_per_role_with_their_passwords_printed(first, second)
    _ninety_days_of_trading_on_the_sandbox_in_three_currencies()
    _refunds_above_and_below_the_threshold_and_two_waiting_for_a_second_person()
    _disputes_in_every_state_and_one_merchant_above_the_ratio_threshold()
    _kyc_cases_in_every_state_with_documents_screening_hits_and_notes()
    _starter_fraud_rules_written_by_an_officer_after_the_history()
    call_command("verify_audit_chain", stdout=io.StringIO())


def _starter_fraud_rules_written_by_an_officer_after_the_history() -> None:
    from kyc.demo.fraud import STARTER_RULES
    from payments.fraud.models import FraudAlert, FraudRule

    rules = FraudRule.objects.filter(key__in=[r["key"] for r in STARTER_RULES])
    assert {r.key for r in rules} == {r["key"] for r in STARTER_RULES}
    assert {r.created_by.username for r in rules} == {"officer"}
    assert not FraudAlert.objects.exists()  # the history was loaded before them: no alert yet


def _load_twice(tmp_path, monkeypatch) -> tuple[str, str]:
    from kyc.management.commands import seed_demo

    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", tmp_path / "demo_credentials.json")
    first, second = io.StringIO(), io.StringIO()
    call_command("seed_demo", stdout=first)
    counts = [m.objects.count() for m in MODELS]
    call_command("seed_demo", stdout=second)
    assert [m.objects.count() for m in MODELS] == counts
    return first.getvalue(), second.getvalue()


def _two_users_per_role_with_their_passwords_printed(first: str, second: str) -> None:
    assert "day 90 of 90" in first
    assert "already loaded" in second
    for role in roles.ROLE_PERMISSIONS:
        people = User.objects.filter(groups__name=role)
        assert people.count() == 2, role
        for user in people:
            password = next(
                line.split()[1]
                for line in second.splitlines()
                if line.strip().startswith(user.username + " ")
            )
            assert user.check_password(password)


def _ninety_days_of_trading_on_the_sandbox_in_three_currencies() -> None:
    payments = Payment.objects.all()
    oldest = payments.order_by("created_at").first().created_at
    assert (timezone.now() - oldest).days >= 88
    trading = payments.values("merchant").distinct().count()
    assert trading == 6
    assert set(payments.values_list("currency", flat=True)) == {"EUR", "GBP", "USD"}
    assert set(payments.values_list("gateway", flat=True)) == {"sandbox"}
    # Every payment's gateway side is at the sandbox, so old ones can be refunded there.
    references = set(
        SandboxObject.objects.filter(kind="payment").values_list("reference", flat=True)
    )
    assert set(payments.values_list("gateway_reference", flat=True)) <= references
    statuses = set(payments.values_list("status", flat=True))
    assert {"captured", "failed", "canceled", "refunded", "partially_refunded"} <= statuses
    # A daily rhythm: most days have payments, and no single day has them all.
    per_day = payments.values("created_at__date").annotate(n=Count("pk"))
    assert len(per_day) >= 80
    assert max(row["n"] for row in per_day) < payments.count() / 20


def _refunds_above_and_below_the_threshold_and_two_waiting_for_a_second_person() -> None:
    threshold = settings.REFUND_APPROVAL_THRESHOLD
    amounts = list(Refund.objects.values_list("amount", flat=True))
    assert any(a > threshold for a in amounts) and any(a <= threshold for a in amounts)
    waiting = ApprovalRequest.objects.filter(status="pending", action=REFUND_APPROVAL)
    assert waiting.count() == 2
    # Asked by each operations user, so either can approve the other's.
    assert {r.requested_by.username for r in waiting} == {"ops", "ops2"}


def _disputes_in_every_state_and_one_merchant_above_the_ratio_threshold() -> None:
    assert set(Chargeback.objects.values_list("status", flat=True)) == set(Chargeback.Status.values)
    rollups_refresh_recent(days=90)
    ratios = chargeback_ratios_for_month(day=timezone.now().date())
    above = [r.name for r in ratios if r.above]
    assert above == ["Costa Azul"]
    # The open ones can be answered through the sandbox.
    for chargeback in Chargeback.objects.filter(status="needs_response"):
        row = SandboxObject.objects.get(kind="dispute", reference=chargeback.gateway_reference)
        assert row.data["status"] == "needs_response"


def _kyc_cases_in_every_state_with_documents_screening_hits_and_notes() -> None:
    assert set(KycCase.objects.values_list("status", flat=True)) == set(KycCase.Status.values)
    submitted = KycCase.objects.exclude(status="draft")
    assert all(case.documents.exists() for case in submitted)
    assert KycCase.objects.filter(notes__isnull=False).exists()
    # A hit still to judge, a hit judged, and a case waiting for its second approval.
    hits = ScreeningResult.objects.all()
    assert hits.filter(disposition="pending").exists()
    assert hits.exclude(disposition="pending").exists()
    assert ApprovalRequest.objects.filter(status="pending", action=KYC_SECOND_APPROVAL).exists()
    # Score and level come from the one scoring: no level below its own score.
    for case in submitted:
        assert case.risk.scored and case.risk.level == case.risk_level
