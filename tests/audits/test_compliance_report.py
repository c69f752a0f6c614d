"""The PCI DSS compliance report (issue 13, point 6): each check turns red on a crafted
violation and green again when it is fixed; reports are kept; the page and the command."""

from __future__ import annotations

import datetime
import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits import roles
from audits.accounts import staff_disable_inactive
from audits.compliance import checks
from audits.compliance.checks import FAIL, PASS, UNKNOWN, card_numbers_in, luhn_valid
from audits.models import ComplianceReport, PaymentAudit
from kyc.models import CaseNote
from tests.conftest import make_staff
from tests.helpers import row_counts
from tests.kyc.factories import KycCaseFactory
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db


def with_device(user: User) -> User:
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user


@pytest.fixture
def officer() -> User:
    return with_device(make_staff("officer", roles.COMPLIANCE_OFFICER))


# -- each check: red on a violation, green when fixed ---------------------------------------


def test_a_staff_account_without_a_second_factor_fails_8_4_2(settings, officer) -> None:
    settings.STAFF_REQUIRE_OTP = True
    assert checks.second_factor_for_every_staff_account().status == PASS
    newcomer = make_staff("newcomer", roles.KYC_ANALYST)
    finding = checks.second_factor_for_every_staff_account()
    assert finding.status == FAIL and "newcomer" in finding.evidence
    with_device(newcomer)
    assert checks.second_factor_for_every_staff_account().status == PASS
    settings.STAFF_REQUIRE_OTP = False
    assert "STAFF_REQUIRE_OTP is off" in checks.second_factor_for_every_staff_account().evidence


def test_an_account_unused_for_90_days_fails_8_2_6_until_the_daily_task_disables_it(
    officer,
) -> None:
    assert checks.inactive_accounts_disabled().status == PASS
    idle = make_staff("idle", roles.AUDITOR)
    idle.last_login = timezone.now() - datetime.timedelta(days=91)
    idle.save()
    finding = checks.inactive_accounts_disabled()
    assert finding.status == FAIL and "idle" in finding.evidence
    before = PaymentAudit.objects.filter(action_type__startswith="security.").count()
    assert staff_disable_inactive() == ["idle"]
    assert not User.objects.get(username="idle").is_active
    # The security trail records who was disabled.
    assert PaymentAudit.objects.filter(action_type__startswith="security.").count() > before
    assert checks.inactive_accounts_disabled().status == PASS
    assert staff_disable_inactive() == []  # nothing twice


def test_lockout_and_session_timeouts_are_read_from_the_settings(settings) -> None:
    assert checks.lockout_configured().status == PASS
    settings.AXES_FAILURE_LIMIT = 50
    assert checks.lockout_configured().status == FAIL
    settings.AXES_FAILURE_LIMIT = 10
    assert checks.lockout_configured().status == PASS
    assert checks.session_idle_timeout().status == PASS
    settings.SESSION_IDLE_SECONDS = 3600
    assert checks.session_idle_timeout().status == FAIL


def test_a_card_number_in_a_note_fails_3_3_in_the_note_and_in_the_trail(officer) -> None:
    assert checks.no_stored_card_numbers().status == PASS
    note = CaseNote.objects.create(
        case=KycCaseFactory(),
        author=officer,
        text="Customer read out 4111 1111 1111 1111 on the phone",
    )
    finding = checks.no_stored_card_numbers()
    assert finding.status == FAIL
    assert f"kyc.CaseNote.text #{note.pk}" in finding.evidence
    # The audit trail holds the note's text too: it is found there as well.
    assert "auditlog.LogEntry" in finding.evidence or "audits.PaymentAudit" in finding.evidence


def test_a_card_number_in_a_record_is_found_and_green_again_when_edited_out() -> None:
    merchant = MerchantFactory(trading_name="Pay with 5555-5555-5555-4444")
    found = [(m, field) for m, field, pk in checks.stored_card_numbers() if pk == merchant.pk]
    assert ("payments.Merchant", "trading_name") in found
    merchant.trading_name = "Finance desk"
    merchant.save()
    still = [
        (label, field, pk)
        for label, field, pk in checks.stored_card_numbers()
        if label == "payments.Merchant"
    ]
    assert still == []


@pytest.mark.parametrize(
    "text,found",
    [
        ("4242424242424242", True),
        ("card 4000-0000-0000-0002 declined", True),
        ("4111111111111112", False),  # fails Luhn
        ("order 123456789012", False),  # 12 digits
        ("0000000000000000", False),  # one repeated digit: a placeholder
        ("sha 4242424242424242abcdef", False),  # part of a longer token
        ("ref pi_4242424242424242", True),  # an underscore is a boundary
    ],
)
def test_card_numbers_are_found_by_pattern_and_luhn(text, found) -> None:
    assert any(card_numbers_in(text)) is found


def test_luhn() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


@pytest.mark.postgres
def test_a_disabled_audit_trigger_fails_10_3_2_until_it_is_enabled_again(db) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the triggers' states are PostgreSQL's pg_trigger")
    assert checks.audit_rows_protected().status == PASS
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE payment_audits DISABLE TRIGGER payment_audits_append_only")
    try:
        finding = checks.audit_rows_protected()
        assert finding.status == FAIL and "payment_audits_append_only" in finding.evidence
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE payment_audits ENABLE ALWAYS TRIGGER payment_audits_append_only"
            )
    assert checks.audit_rows_protected().status == PASS


def test_the_chains_verify_and_the_trail_covers_every_record() -> None:
    MerchantFactory()
    assert checks.audit_chains_verify().status == PASS
    assert checks.audit_trail_covers_every_record().status == PASS


def test_dependencies_are_pinned_and_installed_as_pinned(tmp_path, monkeypatch) -> None:
    assert checks.dependencies_pinned().status == PASS
    lock = tmp_path / "requirements.lock"
    lock.write_text("Django>=5\nstripe==0.0.1\n")
    monkeypatch.setattr(checks, "LOCK_FILE", lock)
    finding = checks.dependencies_pinned()
    assert finding.status == FAIL
    assert "not pinned: Django>=5" in finding.evidence and "stripe" in finding.evidence


def test_the_vulnerability_scan_says_plainly_why_it_did_not_run(monkeypatch) -> None:
    monkeypatch.setattr(checks, "ADVISORY_PROBE", "http://127.0.0.1:9/unreachable")
    finding = checks.known_vulnerabilities()
    assert finding.status == UNKNOWN
    assert finding.evidence.startswith("Not run:") and "could not be reached" in finding.evidence


# -- the report: kept, shown, printed ---------------------------------------------------------


def test_the_command_prints_markdown_or_json_keeps_each_report_and_fails_on_a_failure(
    settings,
) -> None:
    settings.STAFF_REQUIRE_OTP = False  # 8.4.2 fails: the command exits non-zero
    out = io.StringIO()
    with pytest.raises(CommandError, match="checks fail"):
        call_command("compliance_report", "--format", "json", stdout=out, stderr=io.StringIO())
    document = json.loads(out.getvalue())
    assert document["standard"] == "PCI DSS v4.0.1"
    requirements = [f["requirement"] for f in document["findings"]]
    for requirement in ("8.4.2", "8.2.6", "8.3.4", "8.2.8", "10.2", "10.3.2", "10.3.4", "3.3/3.4"):
        assert requirement in requirements
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("compliance_report", "--format", "md", stdout=out, stderr=io.StringIO())
    assert "| 8.4.2 | Multi-factor" in out.getvalue()
    assert ComplianceReport.objects.count() == 2  # the history


def test_the_page_shows_the_latest_report_and_officers_run_it(client, officer) -> None:
    client.force_login(officer)
    page = client.get("/audits/compliance/")
    assert page.status_code == 200 and b"No report yet" in page.content
    response = client.post("/audits/compliance/run")
    assert response.status_code == 302
    report = ComplianceReport.objects.get()
    assert report.created_by == officer and report.source == "web"
    page = client.get("/audits/compliance/")
    assert b"8.4.2" in page.content and b"How to fix" in page.content
    download = client.get(f"/audits/compliance/{report.pk}.json")
    assert json.loads(download.content)["summary"]["fail"] == report.failed


def test_an_auditor_reads_reports_but_cannot_run_one(client) -> None:
    auditor = make_staff("auditor", roles.AUDITOR)
    client.force_login(auditor)
    assert client.get("/audits/compliance/").status_code == 200
    before = row_counts()
    assert client.post("/audits/compliance/run").status_code == 403
    assert row_counts() == before


def test_an_analyst_sees_no_report(client) -> None:
    client.force_login(make_staff("analyst", roles.KYC_ANALYST))
    assert client.get("/audits/compliance/").status_code == 403


def test_values_on_an_older_key_fail_3_6_until_rotate_keys_moves_them(settings) -> None:
    import base64
    import os

    MerchantFactory(contact_email="keys@example.com")
    assert checks.keys_rotated().status == PASS
    newer = base64.urlsafe_b64encode(os.urandom(32)).decode()
    settings.FIELD_ENCRYPTION_KEYS = [newer, *settings.FIELD_ENCRYPTION_KEYS]
    finding = checks.keys_rotated()
    assert finding.status == FAIL and "not on the newest key" in finding.evidence
    call_command("rotate_keys", stdout=io.StringIO())
    finding = checks.keys_rotated()
    assert finding.status == PASS and "rotated onto on" in finding.evidence


def test_a_key_older_than_its_cryptoperiod_fails_3_6(settings) -> None:
    import time_machine

    MerchantFactory()
    settings.KEY_CRYPTOPERIOD_DAYS = 30
    assert checks.keys_rotated().status == PASS
    with time_machine.travel(timezone.now() + datetime.timedelta(days=31)):
        finding = checks.keys_rotated()
    assert finding.status == FAIL and "beyond the 30-day cryptoperiod" in finding.evidence
