"""The overview (kyc/overview.py) and the roll-ups it reads (payments/services/rollups.py):
roll-ups equal a direct count, the page's queries do not grow with the data, each role sees
its sections and no other."""

from __future__ import annotations

import datetime
import random
from collections import Counter
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import QuerySet
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kyc.models import KycCase
from kyc.overview import sections_for
from payments.charts import Series, bar_chart
from payments.models import (
    ApprovalRequest,
    Merchant,
    Payment,
    PaymentDailyRollup,
    Refund,
)
from payments.services.refunds import REFUND_APPROVAL
from payments.services.rollups import (
    OUTCOMES,
    RollupRangeInvalid,
    rollups_refresh,
    rollups_refresh_recent,
)
from payments.tasks import payment_rollups_refresh
from tests.conftest import make_staff
from tests.kyc.factories import KycCaseFactory
from tests.payments.factories import ChargebackFactory, MerchantFactory

pytestmark = pytest.mark.django_db

GATEWAYS = ["stripe", "braintree"]
CURRENCIES = ["EUR", "GBP", "JPY"]
STATUSES = [s.value for s in Payment.Status]


def make_payments(
    count: int, *, merchants: list[Merchant], today: datetime.date, days: int = 5, seed: int = 1
) -> list[Payment]:
    """Payments spread over `days` days, gateways, currencies and every status, written
    straight into the table (test data: the audited managers refuse bulk writes), then moved
    to their day (created_at is auto_now_add, so a bulk insert sets it to now)."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        status = STATUSES[n % len(STATUSES)]
        amount = 100 + rng.randrange(50_000)
        captured = amount if status in OUTCOMES["succeeded"] else 0
        refunded = captured // 2 if status == Payment.Status.PARTIALLY_REFUNDED else 0
        if status == Payment.Status.REFUNDED:
            refunded = captured
        rows.append(
            Payment(
                merchant=merchants[n % len(merchants)],
                gateway=GATEWAYS[rng.randrange(len(GATEWAYS))],
                amount=amount,
                currency=CURRENCIES[rng.randrange(len(CURRENCIES))],
                status=status,
                captured_amount=captured,
                refunded_amount=refunded,
            )
        )
    created = QuerySet(Payment).bulk_create(rows, batch_size=2_000)
    by_day: dict[int, list[int]] = {}
    for payment in created:
        by_day.setdefault(rng.randrange(days), []).append(payment.pk)
    for back, pks in by_day.items():
        start = datetime.datetime.combine(
            today - datetime.timedelta(days=back), datetime.time(12), tzinfo=datetime.UTC
        )
        QuerySet(Payment).filter(pk__in=pks).update(created_at=start)
    # Refunds of the refunded ones, requested on the day after their payment, some failed.
    refunded = list(
        Payment.objects.filter(pk__in=[p.pk for p in created], refunded_amount__gt=0).values(
            "pk", "refunded_amount", "created_at"
        )
    )
    refunds = QuerySet(Refund).bulk_create(
        [
            Refund(
                payment_id=p["pk"],
                amount=p["refunded_amount"],
                status=Refund.Status.FAILED if n % 5 == 0 else Refund.Status.SUCCEEDED,
                reason=Refund.Reason.DUPLICATE,
            )
            for n, p in enumerate(refunded)
        ]
    )
    for refund, p in zip(refunds, refunded, strict=True):
        QuerySet(Refund).filter(pk=refund.pk).update(
            created_at=min(p["created_at"] + datetime.timedelta(days=1), timezone.now())
        )
    return created


def direct_counts() -> dict[tuple[Any, ...], Counter[str]]:
    """The roll-ups' numbers counted row by row in Python, not by the database's GROUP BY."""
    out: dict[tuple[Any, ...], Counter[str]] = {}
    status_outcome = {s: o for o, statuses in OUTCOMES.items() for s in statuses}
    for p in Payment.objects.values(
        "merchant_id", "gateway", "currency", "status", "captured_amount", "created_at"
    ):
        key = (p["created_at"].date(), p["merchant_id"], p["gateway"], p["currency"])
        counter = out.setdefault(key, Counter())
        counter["payments"] += 1
        counter[status_outcome[p["status"]]] += 1
        counter["captured_amount"] += p["captured_amount"]
    for r in Refund.objects.values(
        "payment__merchant_id",
        "payment__gateway",
        "payment__currency",
        "status",
        "amount",
        "created_at",
    ):
        key = (
            r["created_at"].date(),
            r["payment__merchant_id"],
            r["payment__gateway"],
            r["payment__currency"],
        )
        counter = out.setdefault(key, Counter())
        if r["status"] in Refund.HOLDING:
            counter["refunds"] += 1
            counter["refunded_amount"] += r["amount"]
        elif r["status"] == Refund.Status.FAILED:
            counter["refunds_failed"] += 1
    return out


def rollup_counts() -> dict[tuple[Any, ...], Counter[str]]:
    fields = ["payments", *OUTCOMES, "captured_amount", "refunds", "refunded_amount"]
    return {
        (r.day, r.merchant_id, r.gateway, r.currency): Counter(
            {f: getattr(r, f) for f in [*fields, "refunds_failed"] if getattr(r, f)}
        )
        for r in PaymentDailyRollup.objects.all()
    }


@pytest.fixture
def merchants() -> list[Merchant]:
    return [MerchantFactory() for _ in range(3)]


def test_rollups_equal_a_direct_count_over_days_gateways_currencies_and_outcomes(
    merchants: list[Merchant],
) -> None:
    today = timezone.now().date()
    make_payments(600, merchants=merchants, today=today, days=6)
    done = rollups_refresh_recent(days=8, today=today)
    assert [r.day for r in done][-1] == today
    assert sum(r.payments for r in done) == 600
    direct = direct_counts()
    assert len({key[0] for key in direct}) >= 6  # several days
    assert {key[2] for key in direct} == set(GATEWAYS)
    assert {key[3] for key in direct} == set(CURRENCIES)
    assert rollup_counts() == direct


def test_a_refresh_replaces_the_days_numbers_and_drops_keys_that_are_gone(
    merchants: list[Merchant],
) -> None:
    today = timezone.now().date()
    payments = make_payments(40, merchants=merchants, today=today, days=1)
    rollups_refresh(day=today)
    first = rollup_counts()
    # A payment moves to another day (as a late correction would): both days follow it.
    moved = payments[0]
    QuerySet(Payment).filter(pk=moved.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=3)
    )
    QuerySet(Refund).filter(payment=moved).delete()
    rollups_refresh(day=today)
    rollups_refresh(day=today - datetime.timedelta(days=3))
    rollups_refresh(day=today)  # twice is the same as once
    assert rollup_counts() == direct_counts() != first


def test_refresh_rollups_command_prints_progress_and_refuses_a_bad_range(
    merchants: list[Merchant], capsys: pytest.CaptureFixture[str]
) -> None:
    make_payments(30, merchants=merchants, today=timezone.now().date(), days=2)
    call_command("refresh_rollups", "--days", "3")
    out = capsys.readouterr().out
    assert out.count(" payments, ") == 3 and "Refreshed 3 day(s)" in out
    assert rollup_counts() == direct_counts()
    with pytest.raises(CommandError, match="1 to 3660 days, not 0"):
        call_command("refresh_rollups", "--days", "0")
    with pytest.raises(RollupRangeInvalid):
        rollups_refresh_recent(days=-1)


def test_the_beat_task_refreshes_today_and_yesterday(
    merchants: list[Merchant], settings: Any
) -> None:
    make_payments(20, merchants=merchants, today=timezone.now().date(), days=2, seed=3)
    assert payment_rollups_refresh() == PaymentDailyRollup.objects.count() > 0
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["payment-rollups"]["task"] == "payments.tasks.payment_rollups_refresh"
    assert schedule["payment-rollups"]["schedule"] <= 600


def test_the_chart_is_an_accessible_svg_with_escaped_text() -> None:
    svg = bar_chart(
        chart_id="c1",
        title="Volume <EUR>",
        labels=["01 Nov", "02 Nov", "03 Nov"],
        series=[Series("stripe", [1, 2, 0]), Series("<b>bt</b>", [3, 0, 1])],
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'role="img"' in svg and 'aria-labelledby="c1-title c1-desc"' in svg
    assert '<title id="c1-title">Volume &lt;EUR&gt;</title>' in svg
    assert "highest 4 on 01 Nov" in svg  # the desc names the top stack
    assert svg.count("<rect") == 4 + 2  # non-zero segments, plus the legend's two swatches
    assert "<b>" not in svg and "&lt;b&gt;bt&lt;/b&gt;" in svg
    assert "<script" not in svg


# The page ------------------------------------------------------------------------------


def _world(merchants: list[Merchant], payments: int, seed: int) -> None:
    """Everything each section shows: payments (rolled up), disputes due and overdue, a
    merchant above the chargeback-ratio threshold, KYC cases open and overdue, approvals."""
    now = timezone.now()
    make_payments(payments, merchants=merchants, today=now.date(), days=5, seed=seed)
    for hours in (-30, 20, 100):  # overdue, due soon, later
        ChargebackFactory(
            payment__merchant=merchants[0], evidence_due_by=now + datetime.timedelta(hours=hours)
        )
    for due in (-10, 10):
        KycCaseFactory(
            status=KycCase.Status.SUBMITTED,
            submitted_at=now - datetime.timedelta(days=3),
            due_at=now + datetime.timedelta(hours=due),
        )
    requester = make_staff(f"requester{seed}")
    with transaction.atomic():
        ApprovalRequest.objects.create(
            action=REFUND_APPROVAL,
            target_type="payments.refund",
            target_id=str(seed),
            requested_by=requester,
            expires_at=now + datetime.timedelta(hours=48),
        )
    # The disputes' payments too: what the beat task would have rolled up by now.
    rollups_refresh_recent(days=5)


def _page(client: Client) -> tuple[Any, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/overview/")
    assert response.status_code == 200
    return response, len(queries)


def test_the_page_keeps_its_number_of_queries_from_50_to_5000_payments(
    merchants: list[Merchant], administrator: Any
) -> None:
    client = Client()
    client.force_login(administrator)
    _world(merchants, 50, seed=1)
    small, small_count = _page(client)
    _world(merchants, 4_950, seed=2)
    large, large_count = _page(client)
    assert Payment.objects.count() >= 5_000
    assert small_count == large_count
    # session, user, the user's and the group's permissions (4); payments: the roll-ups (1);
    # disputes: counts, the soonest (2); chargeback ratios: chargebacks, roll-ups (2); KYC:
    # counts, the oldest open case, the overdue cases (3); approvals (1).
    assert large_count == 13
    assert small.context["payments"].gateways and large.context["payments"].gateways


def test_the_numbers_match_the_database(
    merchants: list[Merchant], administrator: Any, settings: Any
) -> None:
    settings.CHARGEBACK_RATIO_THRESHOLD = 0.009
    client = Client()
    client.force_login(administrator)
    _world(merchants, 200, seed=4)
    response, _ = _page(client)
    ctx = response.context
    overview = ctx["payments"]
    totals = {g.gateway: g for g in overview.gateways}
    for gateway in GATEWAYS:
        mine = Payment.objects.filter(gateway=gateway, merchant__in=merchants)
        assert totals[gateway].payments == mine.count()
        assert totals[gateway].succeeded == mine.filter(status__in=OUTCOMES["succeeded"]).count()
        assert totals[gateway].failed == mine.filter(status="failed").count()
    assert ctx["disputes"].overdue == 1 and ctx["disputes"].due_soon == 1
    above = [r for r in ctx["ratios"] if r.above]
    assert [r.merchant_id for r in above] == [merchants[0].pk]
    assert 'class="above"' in response.content.decode()
    kyc = ctx["kyc"]
    assert kyc.overdue == 1 and kyc.open_cases == 2
    assert [a.count for a in ctx["approvals"]] == [1]
    body = response.content.decode()
    assert "<svg" in body and "<script" not in body.split("<main", 1)[1]


@pytest.mark.parametrize(
    ("fixture", "sees", "hidden"),
    [
        ("analyst", {"kyc"}, {"payments", "disputes", "approvals"}),
        ("ops", {"payments", "disputes", "approvals"}, {"kyc"}),
        ("officer", {"payments", "disputes", "kyc", "approvals"}, set()),
        ("auditor", {"payments", "disputes", "kyc", "approvals"}, set()),
    ],
)
def test_each_role_sees_its_sections_and_not_the_others(
    request: pytest.FixtureRequest,
    merchants: list[Merchant],
    fixture: str,
    sees: set[str],
    hidden: set[str],
) -> None:
    _world(merchants, 30, seed=5)
    user = request.getfixturevalue(fixture)
    client = Client()
    client.force_login(user)
    response, _ = _page(client)
    body = response.content.decode()
    assert set(response.context["sections"]) == sees
    for section in sees:
        assert f'id="{section}"' in body
    for section in hidden:
        assert f'id="{section}"' not in body
        assert response.context.get(section) is None
    assert client.get("/")["Location"] == "/overview/"


def test_approvals_show_the_kinds_a_person_decides_or_all_read_only_for_an_auditor(
    merchants: list[Merchant], officer: Any, ops: Any, auditor: Any
) -> None:
    _world(merchants, 10, seed=6)
    seen = {}
    for user in (officer, ops, auditor):
        client = Client()
        client.force_login(user)
        seen[user.username] = _page(client)[0]
    assert seen["officer"].context["approvals"] == []  # a refund is not the officer's
    assert [a.may_decide for a in seen["ops"].context["approvals"]] == [True]
    assert [a.may_decide for a in seen["auditor"].context["approvals"]] == [False]
    assert "(read-only)" in seen["auditor"].content.decode()


def test_staff_without_a_role_land_on_the_console_and_see_no_section(db: None) -> None:
    user = make_staff("norole")
    client = Client()
    client.force_login(user)
    assert sections_for(user) == []
    assert client.get("/")["Location"] == "/admin/"
    response, _ = _page(client)
    assert "no overview sections" in response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(client: Client) -> None:
    response = client.get("/overview/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_empty_overview_says_how_to_build_the_rollups(ops: Any) -> None:
    client = Client()
    client.force_login(ops)
    body = _page(client)[0].content.decode()
    assert "refresh_rollups --days 30" in body
