"""The Content-Security-Policy in a real browser: Chromium reports no violation while a
person signs in, uses the console, the screens and the API docs, and signs out."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_chromium_reports_no_policy_violation(browser: Any, live_server: Any) -> None:
    """Sign in through the form, visit the console, the screens and the API docs, sign out with
    the header's button: Chromium reports no Content-Security-Policy violation anywhere."""
    from tests.conftest import make_staff

    make_staff("root", is_superuser=True)
    violations: list[str] = []
    page = browser.new_context().new_page()
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("a-long-test-passw0rd")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    for url in ("/admin/auth/user/", "/admin/axes/accessattempt/", "/kyc/", "/payments/"):
        page.goto(f"{live_server.url}{url}")
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15_000)  # the UI started
    page.goto(f"{live_server.url}/kyc/")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/admin/login/")
    assert violations == []
    page.goto(f"{live_server.url}/kyc/")
    assert page.url.startswith(f"{live_server.url}/admin/login/")
