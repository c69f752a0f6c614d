"""The demo, end to end in a real browser (Playwright driving Debian's Chromium) against the
live server, on the data `seed_demo` loads: maker-checker on a refund above the threshold
ending refunded through the sandbox's signed webhooks (posted over HTTP to our own endpoint),
a dispute answered with evidence, and the overview's numbers against the database.
Screenshots go to var/screenshots/ (CI artifacts)."""

from __future__ import annotations

import datetime
import io
import re
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from kyc.models import KYC_SECOND_APPROVAL, KycCase
from payments.models import ApprovalRequest, Chargeback, Payment, Refund, WebhookEvent
from payments.overview import chargeback_ratios_for_month
from payments.services.refunds import REFUND_APPROVAL

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(settings, live_server, tmp_path, monkeypatch) -> dict[str, str]:
    """A month of demo history (a shorter load than `make run`'s 90 days, the same code), with
    the sandbox posting its webhooks to the live server as it would to `make run`'s."""
    from kyc.demo import staff
    from kyc.management.commands import seed_demo

    credentials = tmp_path / "demo_credentials.json"
    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", credentials)
    call_command("seed_demo", "--days", "30", stdout=io.StringIO())
    call_command("refresh_rollups", "--days", "31", "--verbosity", "0", stdout=io.StringIO())
    settings.SANDBOX_WEBHOOK_URL = f"{live_server.url}/webhooks/sandbox/"
    settings.SANDBOX_WEBHOOK_DELAY_SECONDS = 0
    return staff.read_credentials(credentials)


def approvals_shown(page: Any) -> dict[str, int]:
    rows = [row.split("\t") for row in page.locator("#approvals tbody tr").all_inner_texts()]
    return {cells[0].strip(): int(cells[1]) for cells in rows}


def sign_in(browser: Any, live_server: Any, passwords: dict[str, str], username: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/overview/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(passwords[username])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/overview/")
    return page


def test_the_demo_workflows_as_operations_and_compliance(
    browser, live_server, demo, screenshots
) -> None:
    """One demo load (the costly part) for the three journeys."""
    a_refund_above_the_threshold_asked_by_one_and_approved_by_the_other_ends_refunded(
        browser, live_server, demo, screenshots
    )
    a_dispute_is_answered_with_evidence_through_the_sandbox(browser, live_server, demo, screenshots)
    the_overview_shows_what_the_database_holds(browser, live_server, demo, screenshots)


def a_refund_above_the_threshold_asked_by_one_and_approved_by_the_other_ends_refunded(
    browser, live_server, demo, screenshots
) -> None:
    payment = Payment.objects.get(merchant__trading_name="Acme", amount=64_000)
    threshold = django_settings.REFUND_APPROVAL_THRESHOLD
    assert payment.amount > threshold and not payment.refunds.exists()

    maker = sign_in(browser, live_server, demo, "ops")
    maker.goto(f"{live_server.url}/payments/{payment.pk}/")
    maker.get_by_label("Amount to refund").fill("640.00")
    maker.get_by_label("Note").fill("Whole order returned")
    maker.get_by_label("I have checked the amount and the customer").check()
    maker.get_by_role("button", name="Request refund").click()
    maker.wait_for_load_state()
    assert "approval" in maker.locator(".messages, [role=status], main").first.inner_text().lower()
    request = ApprovalRequest.objects.get(
        action=REFUND_APPROVAL, status="pending", target_id=str(payment.pk)
    )
    assert not Refund.objects.filter(payment=payment).exists()  # nothing moves before approval

    checker = sign_in(browser, live_server, demo, "ops2")
    checker.goto(f"{live_server.url}/payments/approvals/")
    row = checker.locator(
        "tr", has=checker.locator(f'form[action$="/approvals/{request.pk}/decide"]')
    )
    text = row.inner_text()
    for shown in ("640.00", "GBP", "Acme", "Priya Operations"):
        assert shown in text, shown
    checker.screenshot(path=str(screenshots / "demo-approvals-inbox.png"), full_page=True)
    row.get_by_label("Approve").check()
    row.get_by_role("button", name="Decide").click()
    checker.wait_for_load_state()

    # The sandbox paid it out and told us by a signed webhook over HTTP; the inbox processed it.
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "succeeded"
    assert refund.requested_by.username == "ops"
    assert WebhookEvent.objects.filter(
        provider="sandbox", event_type="refund.succeeded", status="processed"
    ).exists()
    checker.goto(f"{live_server.url}/payments/{payment.pk}/")
    assert re.search(r"Payment \d+ Refunded", checker.locator("h1").inner_text())
    assert "Succeeded" in checker.locator("table").first.inner_text()
    checker.screenshot(path=str(screenshots / "demo-payment-refunded.png"), full_page=True)
    assert Payment.objects.get(pk=payment.pk).status == "refunded"


def a_dispute_is_answered_with_evidence_through_the_sandbox(
    browser, live_server, demo, screenshots
) -> None:
    chargeback = (
        Chargeback.objects.filter(status="needs_response").order_by("evidence_due_by").first()
    )
    page = sign_in(browser, live_server, demo, "ops")
    page.goto(f"{live_server.url}/disputes/{chargeback.pk}/")
    page.get_by_role("textbox", name="Evidence").fill(
        "Delivery confirmed by the courier on the 3rd; signed receipt attached to the order."
    )
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_load_state()
    submit = page.locator(f'form[action$="/disputes/{chargeback.pk}/submit"]')
    submit.get_by_label("I confirm").check()
    submit.get_by_role("button", name=re.compile("Submit evidence")).click()
    page.wait_for_load_state()
    assert "Evidence submitted to the gateway." in page.content()
    page.reload()
    page.screenshot(path=str(screenshots / "demo-dispute-answered.png"), full_page=True)
    # The sandbox put it under review and said so by webhook.
    assert Chargeback.objects.get(pk=chargeback.pk).status == "under_review"
    assert WebhookEvent.objects.filter(
        provider="sandbox", event_type="dispute.updated", status="processed"
    ).exists()


def the_overview_shows_what_the_database_holds(browser, live_server, demo, screenshots) -> None:
    page = sign_in(browser, live_server, demo, "officer")
    page.screenshot(path=str(screenshots / "demo-overview-officer.png"), full_page=True)

    kyc = page.locator("#kyc")
    open_cases = KycCase.objects.exclude(status__in=KycCase.DECIDED).exclude(status="draft")
    stats = kyc.locator(".stat .value").all_inner_texts()
    assert int(stats[0]) == open_cases.count()
    overdue = [c for c in open_cases if c.is_overdue(timezone.now())]
    assert int(stats[1]) == len(overdue) >= 1

    # Each person sees the kinds they decide: an officer the KYC second approvals.
    waiting = ApprovalRequest.objects.filter(status="pending")
    assert approvals_shown(page) == {
        "Second approval of a high-risk KYC case": waiting.filter(
            action=KYC_SECOND_APPROVAL
        ).count()
    }

    ratios = {r.name: r for r in chargeback_ratios_for_month(day=timezone.now().date())}
    # Costa Azul may also be in the "evidence due" table above: the ratio row is the one
    # with its ratio.
    costa_rows = page.locator("#disputes tr", has_text="Costa Azul")
    costa = costa_rows.filter(has_text=ratios["Costa Azul"].ratio_text).inner_text()
    assert ratios["Costa Azul"].above and "above" in costa

    ops = sign_in(browser, live_server, demo, "ops")
    ops.screenshot(path=str(screenshots / "demo-overview-ops.png"), full_page=True)
    assert approvals_shown(ops) == {
        "Refund above the approval threshold": waiting.filter(action=REFUND_APPROVAL).count()
    }
    sandbox_row = ops.locator("#payments tbody tr", has_text="Sandbox").first.inner_text()
    cells = sandbox_row.split("\t")
    first_day = timezone.now().date() - datetime.timedelta(days=29)
    payments = Payment.objects.filter(gateway="sandbox", created_at__date__gte=first_day)
    assert int(cells[1]) == payments.count()
    assert int(cells[3]) == payments.filter(status="failed").count()
