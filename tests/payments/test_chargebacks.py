from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from audits.models import PaymentAudit
from payments.models import Chargeback, Merchant
from payments.services.disputes import chargeback_ratios, daily_review
from payments.tasks import chargebacks_daily
from tests.payments.factories import (
    CapturedPaymentFactory,
    ChargebackFactory,
    MerchantFactory,
)

pytestmark = pytest.mark.django_db


def test_overdue_chargebacks_expire_and_due_soon_ones_are_reported(caplog) -> None:
    now = timezone.now()
    overdue = ChargebackFactory(evidence_due_by=now - datetime.timedelta(hours=1))
    soon = ChargebackFactory(evidence_due_by=now + datetime.timedelta(days=2))
    later = ChargebackFactory(evidence_due_by=now + datetime.timedelta(days=10))
    answered = ChargebackFactory(
        evidence_due_by=now - datetime.timedelta(days=1), status=Chargeback.Status.UNDER_REVIEW
    )
    summary = chargebacks_daily.delay().get()
    assert summary["expired"] == 1 and summary["due_soon"] == 1
    statuses = dict(Chargeback.objects.values_list("pk", "status"))
    assert statuses == {
        overdue.pk: "expired",
        soon.pk: "needs_response",
        later.pk: "needs_response",
        answered.pk: "under_review",
    }
    assert soon.gateway_reference in caplog.text
    assert PaymentAudit.objects.filter(
        object_id=str(overdue.pk), action_type="task.chargeback.update"
    ).exists()


def test_a_merchant_above_the_ratio_threshold_is_flagged(settings) -> None:
    settings.CHARGEBACK_RATIO_THRESHOLD = 0.009
    risky, steady = MerchantFactory(), MerchantFactory()
    risky_payments = [CapturedPaymentFactory(merchant=risky) for _ in range(10)]
    steady_payments = [CapturedPaymentFactory(merchant=steady) for _ in range(200)]
    ChargebackFactory(payment=risky_payments[0])
    ChargebackFactory(payment=steady_payments[0])  # 1 of 200 = 0.5%: under 0.9%

    ratios = {r.merchant_id: r for r in chargeback_ratios(month=timezone.now().date())}
    assert (ratios[risky.pk].chargebacks, ratios[risky.pk].settled_payments) == (1, 10)
    assert ratios[steady.pk].ratio == pytest.approx(0.005)

    assert daily_review()["flagged"] == 1
    risky.refresh_from_db()
    steady.refresh_from_db()
    assert risky.flagged_for_review and "10.00%" in risky.flag_reason
    assert not steady.flagged_for_review
    daily_review()  # running again changes nothing more
    assert (
        PaymentAudit.objects.filter(
            object_type="payments.merchant", object_id=str(risky.pk), action_type__endswith="update"
        ).count()
        == 1
    )


def test_ratios_cost_two_queries_whatever_the_merchant_count(django_assert_num_queries) -> None:
    for _ in range(5):
        ChargebackFactory()
    with django_assert_num_queries(2):  # chargebacks grouped by merchant; settled payments
        assert len(chargeback_ratios(month=timezone.now().date())) == 5
    assert Merchant.objects.count() == 5
