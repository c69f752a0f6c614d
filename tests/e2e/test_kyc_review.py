"""The review workflow in a real browser: Playwright driving Debian's Chromium against the
live server. Screenshots of the queue and the case page go to var/screenshots/ (CI artifacts).
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from audits import roles
from kyc import services
from kyc.models import KycCase, ScreeningResult
from payments.integration.tokens import api_token_create
from payments.models import Merchant
from tests.conftest import make_staff
from tests.payments.factories import MerchantFactory

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
]
PASSWORD = "a-long-test-passw0rd"


def sign_in(browser: Any, live_server: Any, username: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/kyc/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/kyc/")
    return page


def act(page: Any, action: str, **fields: str) -> None:
    """Open an action, fill its fields, tick the confirmation and submit it."""
    form = page.locator(f'form[data-action="{action}"]')
    if not form.is_visible():
        page.locator(f'details:has(form[data-action="{action}"]) > summary').click()
    for name, value in fields.items():
        form.locator(f'[name="{name}"]').fill(value)
    form.get_by_label("I confirm").check()
    form.locator('button[type="submit"]').click()
    page.wait_for_load_state()


def test_a_high_risk_case_from_queue_to_two_approvals(
    browser, live_server, screenshots, settings
) -> None:
    analyst = make_staff("analyst", roles.KYC_ANALYST)
    make_staff("officer", roles.COMPLIANCE_OFFICER)
    make_staff("officer2", roles.COMPLIANCE_OFFICER)
    merchant = MerchantFactory(
        status=Merchant.Status.PENDING,
        # Close to an entry of the screening list: the case has a hit to dispose of.
        legal_name="Global Shadow Trading Ltd",
        trading_name="Shadow Trading",
        risk_level="high",
        country="MT",
        business_type="gambling",
    )
    case = services.kyc_case_create(merchant=merchant, kind="kyb")
    services.kyc_document_upload(
        case=case,
        document_type="company_registration",
        upload=SimpleUploadedFile("registry.pdf", b"%PDF-1.4\n%%EOF\n"),
    )
    services.kyc_case_submit(case=case)

    # An analyst signs in, takes the next case and asks the merchant for more.
    page = sign_in(browser, live_server, "analyst")
    page.get_by_role("link", name="Unassigned").click()
    page.screenshot(path=str(screenshots / "kyc-queue.png"), full_page=True)
    page.get_by_role("button", name="Take next case").click()
    page.wait_for_url(f"{live_server.url}/kyc/cases/{case.pk}/")
    assert page.get_by_text(f"{case.reference} is yours.").is_visible()
    act(page, "start_review")
    act(page, "request_information", message="Proof of address of the registered office")
    assert page.locator("#case-status").inner_text().lower() == "needs information"

    # The merchant resubmits through the integration API, with its own merchant-bound token.
    integration = User.objects.create_user("shadow-trading-integration")
    _, token = api_token_create(
        owner=integration, name="shadow-trading", scopes=["kyc:write"], merchant=merchant
    )
    request = urllib.request.Request(
        f"{live_server.url}/api/v1/kyc-cases/{case.pk}/resubmit/",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read())["status"] == "submitted"
    page.reload()
    act(page, "start_review")
    assert page.locator("#case-status").inner_text().lower() == "in review"

    # Approval waits until every document is reviewed and every screening hit disposed.
    review = page.locator(f'form[action="/kyc/cases/{case.pk}/documents/review"]')
    review.locator('select[name="review_status"]').select_option("accepted")
    review.get_by_label("I confirm").check()
    review.locator('button[type="submit"]').click()
    page.wait_for_load_state()
    assert "Accepted" in page.locator("table:has(th:text('Review'))").inner_text()
    hits = page.locator("form[data-hit]").all()
    assert hits, "the case should have a screening hit to dispose of"
    for hit in hits:
        hit.locator('select[name="disposition"]').select_option("false_positive")
        hit.locator('[name="reason"]').fill("Different company: registry number differs")
        hit.get_by_label("I confirm").check()
        hit.locator('button[type="submit"]').click()
        page.wait_for_load_state()

    # Two compliance officers approve the high-risk case.
    first = sign_in(browser, live_server, "officer")
    first.goto(f"{live_server.url}/kyc/cases/{case.pk}/")
    assert "four eyes" in first.content()
    act(first, "approve", reason="Registry and address check out")
    assert first.get_by_text("a second officer gives the final one").is_visible()
    assert first.locator("#merchant-status").inner_text() == "Pending"

    second = sign_in(browser, live_server, "officer2")
    second.goto(f"{live_server.url}/kyc/cases/{case.pk}/")
    act(second, "approve", reason="Agree")
    assert second.locator("#case-status").inner_text() == "Approved"
    assert second.locator("#merchant-status").inner_text() == "Active"

    # The timeline shows every step, with who did it.
    timeline = second.locator("table:has(caption:text('From the audit trail'))").inner_text()
    for step in (
        "Status: Submitted → In Review",
        "Status: In Review → Needs Information",
        "Status: Needs Information → Submitted",
        "Status: In Review → Approved",
    ):
        assert step in timeline, step
    for person in ("analyst", "officer", "officer2"):
        assert person in timeline
    second.screenshot(path=str(screenshots / "kyc-case.png"), full_page=True)

    assert Merchant.objects.get(pk=merchant.pk).status == Merchant.Status.ACTIVE
    assert KycCase.objects.get(pk=case.pk).decided_by.username == "officer2"
    dispositions = ScreeningResult.objects.filter(case=case).values_list("disposition", flat=True)
    assert set(dispositions) == {"false_positive"}
    assert analyst.pk
