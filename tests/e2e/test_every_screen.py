"""Every screen for every role (issue 12): a full-page screenshot of each, in
var/screenshots/<role>/<screen>.png (CI artifacts), and axe-core's accessibility check on each,
failing on any serious or critical violation.

The screens are derived, not listed: the resolver's named routes outside the console and the API
(with the KYC queue's tabs), and the console's index plus one changelist and one change form per
model in its registry. A route is a screen for a role when a GET by that person answers 200 with
HTML; a 403, a redirect, a 405 (POST only) or a file (CSV, JSON, PDF) is not a screen.

axe-core is pinned in tools/axe/ and installed by `make test-tools` under .venv-tools/axe/; it
is injected from disk, never fetched.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits import roles
from audits.compliance.report import compliance_report_run
from kyc import selectors as kyc_selectors
from kyc.models import KycCase
from kyc.owners import beneficial_owner_add
from payments.fraud.models import FraudAlert
from payments.fraud.services import fraud_rule_create
from payments.models import ReconcileRun, WebhookEvent
from payments.services.disputes import evidence_add_file, evidence_save_draft
from payments.services.payments import payment_record
from payments.services.payout_accounts import payout_account_add
from payments.services.refunds import refund_request
from payments.services.rollups import rollups_refresh
from tests.access.test_role_url_matrix import ROUTES
from tests.conftest import make_staff
from tests.kyc.factories import (
    PDF_BYTES,
    CaseNoteFactory,
    KycCaseFactory,
    KycDocumentFactory,
    ScreeningResultFactory,
)
from tests.payments.factories import (
    CapturedPaymentFactory,
    ChargebackFactory,
    MerchantFactory,
    RefundFactory,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
# `make test-tools` installs it here (AXE_DIR, as the Makefile names it, to put it elsewhere).
AXE_JS = ROOT / os.environ.get("AXE_DIR", ".venv-tools/axe") / "node_modules/axe-core/axe.min.js"
PASSWORD = "a-long-test-passw0rd"  # tests.conftest.make_staff's
BLOCKING = {"serious", "critical"}

# Rules switched off for one screen only, each with the reason it cannot be fixed in our
# templates. Screen name -> {rule id: why}. Never a rule for every screen.
_FILTER_TOOLTIP = (
    "Django's SelectFilter2.js (filter_horizontal) builds a <span aria-label> help icon in "
    "script; the label's text says the same, and a fix means replacing Django's script"
)
EXCLUDED_RULES: dict[str, dict[str, str]] = {
    "admin-auth_group-change": {"aria-prohibited-attr": _FILTER_TOOLTIP},
    "admin-auth_user-change": {"aria-prohibited-attr": _FILTER_TOOLTIP},
}


# Routes that take an object but are no page of their own (each screen's ids are in _world).
NOT_PAGES = {
    "payments:approval-decide": "POST: decides an approval",
    "payments:webhook-replay": "POST: replays an event",
    "payments:dispute-action": "POST: an action on a dispute",
    "payments:fraud-alert-action": "POST: assigns, notes or closes a fraud alert",
    "kyc:case-note": "POST: adds a note",
    "kyc:document-review": "POST: accepts or rejects a document",
    "kyc:screening-dispose": "POST: disposes of a screening hit",
    "kyc:case-action": "POST: an action on a case",
    "kyc:document-file": "the document itself (PDF or image), shown or downloaded",
    "kyc:merchant-suspend": "POST: suspends a merchant",
    "kyc:merchant-subject-export": "POST: the contact person's data as a JSON file",
    "kyc:merchant-subject-erase": "POST: erases the contact person's data",
    "audits:second-factor-confirm": "POST: confirms an authenticator",
    "audits:second-factor-remove": "POST: removes an authenticator",
    "audits:compliance-download": "the report as a Markdown or JSON file",
}


@dataclass(frozen=True)
class Screen:
    name: str  # the screenshot's file name
    url: str


def _slug(role: str) -> str:
    return re.sub(r"\W+", "-", role.lower()).strip("-")


def _user_without_password(username: str, role: str) -> User:
    user = User.objects.create(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def _world(settings: Any, role: str) -> dict[str, Any]:
    """Rows for every screen: a high-risk case with a document, a note and a screening hit,
    cases in each queue, payments with a refund and one waiting for approval, a dispute, a
    webhook event, a reconciliation run, the overview's roll-ups, and a pending authenticator
    for each person. Only `role`'s person signs in (hashing a password costs ~0.3 s)."""
    settings.STAFF_REQUIRE_OTP = False
    settings.REFUND_APPROVAL_THRESHOLD = 1
    users = {
        other: make_staff(_slug(other), other)
        if other == role
        else _user_without_password(_slug(other), other)
        for other in roles.ROLE_PERMISSIONS
    }
    analyst, ops = users[roles.KYC_ANALYST], users[roles.PAYMENTS_OPERATIONS]

    merchant = MerchantFactory(legal_name="Tidewater Games Ltd", trading_name="Tidewater")
    payment = CapturedPaymentFactory(merchant=merchant, amount=500_000)
    CapturedPaymentFactory.create_batch(3, merchant=merchant)
    RefundFactory(payment=CapturedPaymentFactory(merchant=merchant), status="succeeded")
    chargeback = ChargebackFactory(payment__merchant=merchant)
    evidence_save_draft(chargeback=chargeback, text="Tracking 1Z999", actor=ops)
    evidence_add_file(
        chargeback=chargeback,
        upload=SimpleUploadedFile("receipt.pdf", PDF_BYTES),
        actor=ops,
    )
    approval = refund_request(
        payment=payment,
        amount=1_000,
        reason="duplicate",
        reason_detail="charged twice",
        actor=users[roles.ADMINISTRATOR],
    ).approval
    assert approval is not None  # above REFUND_APPROVAL_THRESHOLD: waits for a second person

    case = KycCaseFactory(
        status=KycCase.Status.IN_REVIEW,
        assignee=analyst,
        risk_level="high",
        due_at=timezone.now() - datetime.timedelta(hours=2),
        merchant__legal_name="Nordwind Shipping GmbH",
    )
    KycDocumentFactory(case=case)
    owner = beneficial_owner_add(
        merchant=case.merchant,
        full_name="Ingrid Nordwind",
        date_of_birth="1969-05-01",
        nationality="DE",
        residential_address="3 Hafenstrasse, Hamburg",
        ownership_bp=7_500,
        actor=analyst,
    )
    CaseNoteFactory(case=case, author=analyst)
    # A payout account waiting for its micro-deposits' confirmation (the sandbox rail's
    # webhooks in-process): the merchant's screen and the console's payout account pages.
    settings.SANDBOX_ENABLED, settings.PAYOUT_RAIL = True, "sandbox"
    settings.SANDBOX_WEBHOOK_URL, settings.SANDBOX_WEBHOOK_DELAY_SECONDS = "", 0
    payout_account_add(
        merchant=case.merchant,
        holder_name="Nordwind Shipping Treasury",
        country="DE",
        currency="EUR",
        account_number="DE89370400440532013000",
    )
    ScreeningResultFactory(case=case)
    KycCaseFactory(due_at=timezone.now() + datetime.timedelta(days=2))  # unassigned
    KycCaseFactory(status=KycCase.Status.NEEDS_INFORMATION)
    KycCaseFactory(status=KycCase.Status.ESCALATED)

    with transaction.atomic():
        WebhookEvent.objects.create(
            provider="stripe", event_id="evt_screens", event_type="charge.refunded", payload={}
        )
    ReconcileRun.objects.create(
        gateway="stripe",
        since=timezone.now() - datetime.timedelta(days=1),
        finished_at=timezone.now(),
        checked=5,
    )
    # A fraud rule and the alert it raised (a merchant's second payment in the hour).
    fraud_rule = fraud_rule_create(
        key="merchant-burst",
        name="Merchant burst",
        kind="velocity_count",
        params={"subject": "payment", "key": "merchant", "window_minutes": 60, "max_count": 1},
        score=60,
        actor=users[roles.COMPLIANCE_OFFICER],
    )
    for _ in range(2):
        payment_record(merchant=merchant, gateway="stripe", amount=4_200, currency="EUR")
    fraud_alert = FraudAlert.objects.get()
    rollups_refresh(day=timezone.now().date())
    compliance_report_run(source="command")
    for user in users.values():
        TOTPDevice.objects.create(user=user, name="work phone", confirmed=False)

    return {
        "username": users[role].username,
        "ids": {
            "payments:payment-detail": {"pk": payment.pk},
            "payments:dispute-detail": {"pk": chargeback.pk},
            "payments:fraud-alert": {"pk": fraud_alert.pk},
            "payments:fraud-rule": {"pk": fraud_rule.pk},
            "kyc:case": {"pk": case.pk},
            "kyc:merchant": {"pk": case.merchant_id},
            "kyc:owner-add": {"pk": case.merchant_id},
            "kyc:owner-edit": {"pk": owner.pk},
            "audits:object": {"object_type": "payments.payment", "object_id": payment.pk},
        },
    }


def _candidates(ids: dict[str, dict[str, Any]]) -> list[Screen]:
    """Every GET-able page we render: named routes outside the console and the API whose
    objects _world names (or NOT_PAGES says why not a page), the queue's tabs, and
    the console's index, changelists and change forms."""
    out = []
    for route in ROUTES:
        if route.name.startswith(("admin:", "api-", "webhook-")) or route.name in {
            "home",  # redirects to the overview
            "healthz",
            "readyz",
            "metrics",  # Prometheus text for a scraper with a token (tests/test_metrics.py)
        }:
            continue
        if route.name in NOT_PAGES:
            continue
        # A KeyError here is a new page taking an object: give it one in _world's ids.
        url = route.path.format_map(ids.get(route.name, {}))
        name = route.name.replace(":", "-")
        if route.name == "kyc:queue":
            out += [Screen(f"{name}-{tab}", f"{url}?tab={tab}") for tab in kyc_selectors.QUEUE_TABS]
        else:
            out.append(Screen(name, url))
    out.append(Screen("admin-index", reverse("admin:index")))
    for model in admin.site._registry:
        meta = model._meta
        prefix = f"admin:{meta.app_label}_{meta.model_name}"
        out.append(
            Screen(f"{prefix}-changelist".replace(":", "-"), reverse(f"{prefix}_changelist"))
        )
        first = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        if first is not None:
            out.append(
                Screen(
                    f"{prefix}-change".replace(":", "-"), reverse(f"{prefix}_change", args=[first])
                )
            )
    return out


def _is_screen(response: Any) -> bool:
    status = response.status
    assert status < 500, (response.url, status)
    return status == 200 and response.headers.get("content-type", "").startswith("text/html")


def _blocking_violations(page: Any, screen: Screen) -> list[str]:
    excluded = EXCLUDED_RULES.get(screen.name, {})
    options = {
        "resultTypes": ["violations"],  # no detail on passes: much faster on long tables
        "rules": {rule: {"enabled": False} for rule in excluded},
    }
    result = page.evaluate("options => axe.run(document, options)", options)
    return [
        f"{v['impact']} {v['id']}: {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


def _sign_in(page: Any, base: str, username: str, shots: Path) -> list[str]:
    """Sign in through the sign-in screen, checked and photographed first."""
    page.goto(f"{base}/admin/login/?next=/overview/")
    page.screenshot(path=str(shots / "sign-in.png"), full_page=True)
    violations = _blocking_violations(page, Screen("sign-in", ""))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/overview/")
    return violations


@pytest.fixture(scope="module")
def axe_js() -> Path:
    if not AXE_JS.exists():
        if shutil.which("npm") is None:
            pytest.skip("needs npm for axe-core (make test-tools installs it; CI has node 20)")
        pytest.fail(f"axe-core is not installed at {AXE_JS}: run `make test-tools`")
    return AXE_JS


@pytest.mark.parametrize("role", list(roles.ROLE_PERMISSIONS))
def test_every_screen_the_role_opens_has_no_serious_accessibility_violation(
    role: str, axe_js: Path, browser: Any, live_server: Any, screenshots: Path, settings: Any
) -> None:
    world = _world(settings, role)
    shots = screenshots / _slug(role)
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    # axe from disk into every page the context opens: an init script runs outside the page's
    # Content-Security-Policy (script-src 'self'), which a <script> tag from the test would not.
    context.add_init_script(path=str(axe_js))
    violations: dict[str, list[str]] = {}
    try:
        page = context.new_page()
        violations["sign-in"] = _sign_in(page, live_server.url, world["username"], shots)
        for screen in _candidates(world["ids"]):
            url = f"{live_server.url}{screen.url}"
            # Asked first without the browser: a file would start a download, a bodiless 405
            # fails a navigation.
            if not _is_screen(page.request.get(url, max_redirects=0)):
                continue  # refused to this role (403, redirect), POST only (405), or a file
            response = page.goto(url)
            assert response is not None and response.status == 200, (screen, response)
            page.screenshot(path=str(shots / f"{screen.name}.png"), full_page=True)
            violations[screen.name] = _blocking_violations(page, screen)
    finally:
        context.close()

    # Every role reaches the overview, its second factor, the console and the KYC queue.
    expected = {"sign-in", "overview", "audits-second-factor", "admin-index", "kyc-queue-all"}
    assert expected <= violations.keys(), sorted(violations)
    found = {name: found for name, found in violations.items() if found}
    assert not found, "\n".join(
        f"{role} {name}:\n  " + "\n  ".join(items) for name, items in found.items()
    )
