"""Payouts need a payout account verified by micro-deposits, on every path (service, database,
console action and change form, API, command); a deposit returned after verification stops
them; the console and the merchant's KYC screen show the account masked with its state."""

from __future__ import annotations

import datetime
import io
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from audits import roles
from audits.models import PaymentAudit
from payments.core.bank_accounts import aba_routing_ok, check_bank_account, iban_checksum_ok
from payments.exceptions import PayoutAmountsWrong, PayoutsNeedVerifiedAccount
from payments.models import Merchant, MicroDeposit, PayoutAccount
from payments.rails import RailCreditReport
from payments.services.payout_accounts import (
    merchant_payouts_set,
    micro_deposit_apply_rail_state,
    payout_account_add,
    payout_account_confirm,
)
from tests.api.conftest import client_for, issue
from tests.conftest import make_staff
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

IBAN = "DE89370400440532013000"


@pytest.fixture(autouse=True)
def _sandbox_rail(settings: Any) -> None:
    settings.SANDBOX_ENABLED = True
    settings.PAYOUT_RAIL = "sandbox"
    settings.SANDBOX_WEBHOOK_SECRET = "sbx_whsec_test"
    settings.SANDBOX_WEBHOOK_URL = ""
    settings.SANDBOX_WEBHOOK_DELAY_SECONDS = 0
    settings.STAFF_REQUIRE_OTP = False


@pytest.fixture
def commit(django_capture_on_commit_callbacks: Any) -> Any:
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def superuser(db: None) -> Any:
    return make_staff("root", is_superuser=True)


def _account(commit: Any, merchant: Merchant, number: str = IBAN) -> PayoutAccount:
    with commit():
        account = payout_account_add(
            merchant=merchant,
            holder_name="Jana Novak Treasury",
            country=number[:2],
            currency="EUR",
            account_number=number,
        )
    return PayoutAccount.objects.get(pk=account.pk)


def _verified(commit: Any, merchant: Merchant) -> PayoutAccount:
    account = _account(commit, merchant)
    amounts = [int(d.amount) for d in account.deposits.all()]
    payout_account_confirm(account=account, amounts=amounts)
    return PayoutAccount.objects.get(pk=account.pk)


def _payouts(merchant: Merchant) -> bool:
    return Merchant.objects.get(pk=merchant.pk).payouts_enabled


def _written() -> tuple[int, int]:
    return (
        PaymentAudit.objects.exclude(
            action_type__in=["security.signin", "security.signout"]
        ).count(),
        LogEntry.objects.count(),
    )


# --- the checks themselves -----------------------------------------------------------------


def test_iban_and_routing_checksums() -> None:
    assert iban_checksum_ok("DE89370400440532013000")
    assert iban_checksum_ok("GB82WEST12345698765432")
    assert not iban_checksum_ok("DE89370400440532013001")
    assert not iban_checksum_ok("DE98370400440532013000")  # swapped check digits
    assert aba_routing_ok("021000021") and aba_routing_ok("110000000")
    assert not aba_routing_ok("021000022") and not aba_routing_ok("000000000")
    checked = check_bank_account(country="gb", account_number="gb82 west 1234 5698 7654 32")
    assert (checked.scheme, checked.account_number, checked.last4) == (
        "iban",
        "GB82WEST12345698765432",
        "5432",
    )
    local = check_bank_account(country="GB", account_number="31926819", routing_code="60-16-13")
    assert (local.scheme, local.routing_code) == ("local", "601613")


# --- payouts need the verified account, on every path ------------------------------------


def test_the_service_refuses_payouts_without_a_verified_account(commit) -> None:
    merchant = MerchantFactory()
    before = _written()
    with pytest.raises(PayoutsNeedVerifiedAccount):
        merchant_payouts_set(merchant=merchant, enabled=True)
    _account(commit, merchant)  # deposits sent, not confirmed yet
    with pytest.raises(PayoutsNeedVerifiedAccount):
        merchant_payouts_set(merchant=merchant, enabled=True)
    assert not _payouts(merchant)
    merchant_payouts_set(merchant=MerchantFactory(), enabled=False)  # off is always allowed
    assert _written()[0] > before[0]  # the account's own rows, not the merchant's flag
    assert not PaymentAudit.objects.filter(
        object_type="payments.merchant", after_state__payouts_enabled=True
    ).exists()


def test_the_service_enables_payouts_with_a_verified_account(commit) -> None:
    merchant = MerchantFactory()
    account = _verified(commit, merchant)
    assert account.status == PayoutAccount.Status.VERIFIED
    merchant_payouts_set(merchant=merchant, enabled=True)
    assert _payouts(merchant)
    assert PaymentAudit.objects.filter(
        object_type="payments.merchant",
        object_id=str(merchant.pk),
        after_state__payouts_enabled=True,
    ).exists()


def test_the_database_refuses_the_flag_without_the_account() -> None:
    merchant = MerchantFactory()
    merchant.payouts_enabled = True
    with pytest.raises(IntegrityError), transaction.atomic():
        merchant.save()
    assert not _payouts(merchant)


def test_the_console_action_refuses_and_then_enables(client, superuser, commit) -> None:
    merchant = MerchantFactory()
    client.force_login(superuser)
    before = _written()
    response = client.post(
        reverse("admin:payments_merchant_changelist"),
        {"action": "enable_payouts", "_selected_action": [merchant.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "payouts need a payout account verified by micro-deposits" in response.content.decode()
    assert not _payouts(merchant)
    assert _written()[0] == before[0]
    _verified(commit, merchant)
    client.post(
        reverse("admin:payments_merchant_changelist"),
        {"action": "enable_payouts", "_selected_action": [merchant.pk]},
    )
    assert _payouts(merchant)


def _merchant_form(merchant: Merchant, **changes: str) -> dict[str, str]:
    data = {
        "legal_name": merchant.legal_name,
        "trading_name": merchant.trading_name,
        "country": merchant.country,
        "business_type": merchant.business_type,
        "risk_level": merchant.risk_level,
        "contact_name": merchant.contact_name,
        "contact_email": merchant.contact_email,
        "contact_phone": merchant.contact_phone,
    }
    data.update(changes)
    return data


def test_the_console_change_and_add_forms_refuse_payouts_next_to_the_box(
    client, superuser, commit
) -> None:
    merchant = MerchantFactory()
    client.force_login(superuser)
    before = _written()
    response = client.post(
        reverse("admin:payments_merchant_change", args=[merchant.pk]),
        _merchant_form(merchant, payouts_enabled="on", trading_name="Renamed"),
    )
    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert "payouts_enabled" in errors and "micro-deposits" in errors["payouts_enabled"][0]
    changed = Merchant.objects.get(pk=merchant.pk)
    assert not changed.payouts_enabled and changed.trading_name == merchant.trading_name
    assert _written() == before
    response = client.post(
        reverse("admin:payments_merchant_add"),
        _merchant_form(
            merchant,
            legal_name="Brand New Ltd",
            contact_email="new@example.com",
            payouts_enabled="on",
        ),
    )
    assert response.status_code == 200
    assert not Merchant.objects.filter(legal_name="Brand New Ltd").exists()
    # With the verified account, the change form may turn payouts on.
    _verified(commit, merchant)
    response = client.post(
        reverse("admin:payments_merchant_change", args=[merchant.pk]),
        _merchant_form(Merchant.objects.get(pk=merchant.pk), payouts_enabled="on"),
    )
    assert response.status_code == 302
    assert _payouts(merchant)


def test_the_api_refuses_payouts_without_a_verified_account(administrator, commit) -> None:
    merchant = MerchantFactory()
    api = client_for(issue(administrator, ["merchants:write"]))
    url = f"/api/v1/merchants/{merchant.pk}/payouts/"
    before = _written()
    response = api.post(url, {"enabled": True}, format="json")
    assert response.status_code == 409
    assert response.json()["type"] == "payouts_need_verified_account"
    assert not _payouts(merchant) and _written()[0] == before[0]
    assert api.post(url, {"enabled": "maybe"}, format="json").status_code == 400
    _verified(commit, merchant)
    response = api.post(url, {"enabled": True}, format="json")
    assert response.status_code == 200 and response.json()["payouts_enabled"] is True
    assert _payouts(merchant)


def test_a_merchant_token_cannot_switch_its_own_payouts(commit) -> None:
    integration_user = User.objects.create_user("integration")
    merchant = MerchantFactory()
    _verified(commit, merchant)
    api = client_for(issue(integration_user, ["merchants:write"], merchant))
    response = api.post(
        f"/api/v1/merchants/{merchant.pk}/payouts/", {"enabled": True}, format="json"
    )
    assert response.status_code == 403
    assert not _payouts(merchant)


def test_the_command_refuses_and_says_so(commit) -> None:
    merchant, ready = MerchantFactory(), MerchantFactory()
    _verified(commit, ready)
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 merchant"):
        call_command(
            "set_payouts", "--merchant", str(merchant.pk), "--merchant", str(ready.pk),
            "--enable", stdout=out,
        )  # fmt: skip
    text = out.getvalue()
    assert "Enabling payouts for 2 merchant(s)" in text
    assert f"[1/2] merchant {merchant.pk}: refused" in text
    assert f"[2/2] merchant {ready.pk}" in text and "payouts enabled" in text
    assert not _payouts(merchant) and _payouts(ready)
    entry = PaymentAudit.objects.filter(
        object_type="payments.merchant", object_id=str(ready.pk), after_state__payouts_enabled=True
    ).get()
    assert entry.action_type.startswith("command.")


# --- a deposit returned after verification -----------------------------------------------


def test_a_deposit_returned_after_verification_fails_the_account_and_stops_payouts(
    commit,
) -> None:
    merchant = MerchantFactory()
    account = _verified(commit, merchant)
    merchant_payouts_set(merchant=merchant, enabled=True)
    deposit = account.deposits.first()
    assert deposit is not None
    micro_deposit_apply_rail_state(
        rail="sandbox",
        report=RailCreditReport(
            reference=deposit.rail_reference,
            status="returned",
            occurred_at=timezone.now() + datetime.timedelta(days=2),
            return_reason="no_account",
        ),
    )
    account.refresh_from_db()
    merchant.refresh_from_db()
    assert account.status == PayoutAccount.Status.FAILED
    assert "no_account" in account.failure_reason
    assert not merchant.payouts_enabled and merchant.verified_payout_account_id is None
    with pytest.raises(PayoutsNeedVerifiedAccount):
        merchant_payouts_set(merchant=merchant, enabled=True)


def test_a_late_older_rail_event_changes_nothing(commit) -> None:
    merchant = MerchantFactory()
    account = _account(commit, merchant)
    deposit = account.deposits.first()
    assert deposit is not None and deposit.status == MicroDeposit.Status.SETTLED
    micro_deposit_apply_rail_state(
        rail="sandbox",
        report=RailCreditReport(
            reference=deposit.rail_reference,
            status="sent",
            occurred_at=timezone.now() - datetime.timedelta(hours=1),
        ),
    )
    deposit.refresh_from_db()
    assert deposit.status == MicroDeposit.Status.SETTLED


# --- what staff see ------------------------------------------------------------------------


def test_the_console_shows_the_account_masked_with_its_state(client, commit) -> None:
    merchant = MerchantFactory()
    account = _verified(commit, merchant)
    ops = make_staff("ops-console", roles.PAYMENTS_OPERATIONS)
    client.force_login(ops)
    page = client.get(reverse("admin:payments_payoutaccount_change", args=[account.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "••••3000" in html and "Verified" in html
    assert IBAN not in html and "Jana Novak Treasury" not in html  # ops see the holder masked
    listing = client.get(reverse("admin:payments_payoutaccount_changelist"))
    assert "••••3000" in listing.content.decode() and IBAN not in listing.content.decode()
    merchant_page = client.get(reverse("admin:payments_merchant_change", args=[merchant.pk]))
    assert "••••3000" in merchant_page.content.decode()
    assert "Verified" in merchant_page.content.decode()


def test_the_console_finds_an_account_by_its_number_for_those_who_may(client, commit) -> None:
    merchant = MerchantFactory()
    _account(commit, merchant)
    officer = make_staff("officer-console", roles.COMPLIANCE_OFFICER)
    client.force_login(officer)
    url = reverse("admin:payments_payoutaccount_changelist")
    found = client.get(url, {"q": "DE89 3704 0044 0532 0130 00"})
    assert found.status_code == 200
    assert list(found.context["cl"].result_list) == list(PayoutAccount.objects.all())
    page = client.get(
        reverse("admin:payments_payoutaccount_change", args=[PayoutAccount.objects.get().pk])
    )
    assert "Jana Novak Treasury" in page.content.decode()  # the officer sees contact data


def test_the_merchants_kyc_screen_shows_the_verification_state(client, officer, commit) -> None:
    merchant = MerchantFactory()
    client.force_login(officer)
    empty = client.get(reverse("kyc:merchant", args=[merchant.pk])).content.decode()
    assert "No payout account yet" in empty
    account = _account(commit, merchant)
    html = client.get(reverse("kyc:merchant", args=[merchant.pk])).content.decode()
    assert "Awaiting confirmation" in html and "••••3000" in html and IBAN not in html
    wrong = [int(d.amount) % 99 + 1 for d in account.deposits.all()]
    for _ in range(3):
        with pytest.raises(PayoutAmountsWrong):
            payout_account_confirm(account=account, amounts=wrong)
    html = client.get(reverse("kyc:merchant", args=[merchant.pk])).content.decode()
    assert "Locked" in html and "after 3 wrong confirmations" in html


def test_the_payout_account_list_costs_the_same_whatever_its_length(
    client, commit, django_assert_max_num_queries
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    officer = make_staff("officer-list", roles.COMPLIANCE_OFFICER)
    client.force_login(officer)
    url = reverse("admin:payments_payoutaccount_changelist")
    _account(commit, MerchantFactory(country="DE"))
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    for number in ("DE75512108001245126199", "GB82WEST12345698765432", "NL91ABNA0417164300"):
        _account(commit, MerchantFactory(country=number[:2]), number)
    # session, user, permissions, the page of accounts joined to their merchants, filters
    with django_assert_max_num_queries(len(few)):
        page = client.get(url)
    assert page.content.decode().count("••••") >= 4
    assert len(few) <= 12


@pytest.mark.django_db(transaction=True)
def test_two_merchants_adding_one_account_at_once_get_it_once() -> None:
    """Committed for real, on two connections: neither sees the other's row when it checks;
    the unique index on live accounts' blind index decides, and the loser gets the 409."""
    from payments.exceptions import PayoutAccountInUse
    from tests.conftest import run_at_once

    first, second = MerchantFactory(country="DE"), MerchantFactory(country="DE")

    def add(merchant: Merchant) -> Any:
        return lambda: payout_account_add(
            merchant=merchant,
            holder_name="Jana Novak Treasury",
            country="DE",
            currency="EUR",
            account_number=IBAN,
        )

    results = run_at_once(add(first), add(second))
    assert sorted(type(r).__name__ for r in results) == ["PayoutAccount", "PayoutAccountInUse"]
    assert any(isinstance(r, PayoutAccountInUse) for r in results)
    assert PayoutAccount.objects.count() == 1
    assert MicroDeposit.objects.count() == 2
