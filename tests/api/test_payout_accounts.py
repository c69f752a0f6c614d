"""Micro-deposit verification of payout accounts through the API with a merchant token (issue
15, point 5): the sandbox rail sends two amounts, its signed webhooks go through the real
verification, inbox and handlers, and the merchant confirms them."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
import time_machine
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from audits.models import PaymentAudit
from payments.models import (
    IdempotencyRecord,
    Merchant,
    MicroDeposit,
    PayoutAccount,
    SandboxObject,
    WebhookEvent,
)
from tests.api.conftest import client_for, issue
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

IBAN = "DE89 3704 0044 0532 0130 00"
RETURNING_IBAN = "AT861904300235473202"  # the sandbox rail's bank returns its credits
ACCOUNT = {"holder_name": "Jana Novak Treasury", "country": "DE", "currency": "EUR"}


@pytest.fixture(autouse=True)
def _sandbox_rail(settings: Any) -> None:
    settings.SANDBOX_ENABLED = True
    settings.PAYOUT_RAIL = "sandbox"
    settings.SANDBOX_WEBHOOK_SECRET = "sbx_whsec_test"
    settings.SANDBOX_WEBHOOK_URL = ""  # in-process: never a server another worktree runs
    settings.SANDBOX_WEBHOOK_DELAY_SECONDS = 0
    settings.PAYOUT_VERIFICATION_DAYS = 10
    settings.PAYOUT_VERIFICATION_ATTEMPTS = 3


@pytest.fixture
def commit(django_capture_on_commit_callbacks: Any) -> Any:
    """Run what would run on commit (the rail's webhooks, then the inbox's processing)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def merchant(db: None) -> Merchant:
    return MerchantFactory(legal_name="Acme Trading GmbH", country="DE")


@pytest.fixture
def api(integration_user: Any, merchant: Merchant) -> Any:
    """A merchant-bound token of the merchant's integration account."""
    # Valid for 30 days: the expiry tests travel past the 10-day window.
    return client_for(
        issue(integration_user, ["merchants:read", "merchants:write"], merchant, hours=30 * 24)
    )


def _add(api: Any, commit: Any, key: str = "add-1", **overrides: Any) -> Any:
    with commit():
        return api.post(
            "/api/v1/payout-account/",
            {**ACCOUNT, "account_number": IBAN, **overrides},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key,
        )


def _confirm(api: Any, commit: Any, amounts: list[int], key: str) -> Any:
    with commit():
        return api.post(
            "/api/v1/payout-account/confirm/",
            {"amounts": amounts},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key,
        )


def _amounts(account_id: int) -> list[int]:
    return [int(d.amount) for d in MicroDeposit.objects.filter(account_id=account_id)]


def _wrong(right: list[int]) -> list[int]:
    return [a % 99 + 1 for a in right]  # each off by one (99 wraps to 1): never the pair sent


def test_adding_an_account_sends_two_deposits_whose_webhooks_make_it_wait_for_confirmation(
    api, commit, merchant
) -> None:
    response = _add(api, commit)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["account_number"] == "••••3000"
    assert body["status"] == "pending"  # answered before the rail's events arrived
    assert "DE89370400440532013000" not in response.content.decode()
    account = PayoutAccount.objects.get(merchant=merchant)
    assert account.status == PayoutAccount.Status.AWAITING_CONFIRMATION
    assert account.scheme == "iban" and account.last4 == "3000"
    assert account.expires_at > timezone.now() + datetime.timedelta(days=9)
    amounts = _amounts(account.pk)
    assert len(amounts) == 2 and all(1 <= a <= 99 for a in amounts) and len(set(amounts)) == 2
    assert set(account.deposits.values_list("status", flat=True)) == {"settled"}
    # Each credit: sent then settled, each a signed sandbox event processed by the inbox.
    events = WebhookEvent.objects.filter(provider="sandbox").order_by("pk")
    assert sorted(events.values_list("event_type", flat=True)) == [
        "credit.sent",
        "credit.sent",
        "credit.settled",
        "credit.settled",
    ]
    assert set(events.values_list("status", flat=True)) == {"processed"}
    for event in events:
        assert event.signature.startswith("t=") and "DE89" not in event.raw_body
    shown = api.get("/api/v1/payout-account/").json()
    assert shown["status"] == "awaiting_confirmation" and shown["attempts_left"] == 3
    assert [d["status"] for d in shown["deposits"]] == ["settled", "settled"]
    assert "amount" not in str(shown["deposits"])


def test_the_right_amounts_in_any_order_verify_the_account_and_every_step_is_audited(
    api, commit, merchant
) -> None:
    _add(api, commit)
    account = PayoutAccount.objects.get(merchant=merchant)
    response = _confirm(api, commit, list(reversed(_amounts(account.pk))), "confirm-1")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "verified"
    account.refresh_from_db()
    merchant.refresh_from_db()
    assert account.status == PayoutAccount.Status.VERIFIED and account.verified_at is not None
    assert merchant.verified_payout_account_id == account.pk
    assert merchant.payouts_enabled is False  # verifying does not enable payouts by itself
    # Both trails hold each step: created, awaiting confirmation, verified; deposits too.
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(PayoutAccount), object_pk=str(account.pk)
    )
    statuses = [e.changes_dict.get("status", [None, None])[1] for e in entries]
    assert {"pending", "awaiting_confirmation", "verified"} <= set(statuses)
    assert entries.filter(actor__username="integration").exists()
    assert (
        PaymentAudit.objects.filter(
            object_type="payments.payoutaccount", object_id=str(account.pk)
        ).count()
        >= 3
    )
    assert (
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(MicroDeposit)
        ).count()
        >= 6
    )  # two created, each sent and settled


def test_wrong_amounts_count_attempts_and_lock_the_account_at_the_limit(
    api, commit, merchant
) -> None:
    _add(api, commit)
    account = PayoutAccount.objects.get(merchant=merchant)
    right = _amounts(account.pk)
    answers = [_confirm(api, commit, _wrong(right), f"wrong-{n}") for n in range(3)]
    assert [a.status_code for a in answers] == [422, 422, 422]
    assert [a.json()["type"] for a in answers] == ["payout_amounts_wrong"] * 3
    assert "2 attempts left" in answers[0].json()["message"]
    assert "1 attempt left" in answers[1].json()["message"]
    assert "locked" in answers[2].json()["message"]
    account.refresh_from_db()
    assert account.status == PayoutAccount.Status.LOCKED and account.attempts == 3
    # Locked: even the right amounts are refused, and nothing more is counted.
    late = _confirm(api, commit, right, "right-after-lock")
    assert late.status_code == 409 and late.json()["type"] == "payout_verification_locked"
    account.refresh_from_db()
    assert account.attempts == 3 and account.status == PayoutAccount.Status.LOCKED
    assert Merchant.objects.get(pk=merchant.pk).verified_payout_account_id is None


def test_a_wrong_attempt_then_the_right_amounts_verify(api, commit, merchant) -> None:
    _add(api, commit)
    account = PayoutAccount.objects.get(merchant=merchant)
    right = _amounts(account.pk)
    assert _confirm(api, commit, _wrong(right), "wrong").status_code == 422
    assert _confirm(api, commit, right, "right").status_code == 200
    account.refresh_from_db()
    assert account.status == PayoutAccount.Status.VERIFIED and account.attempts == 1


def test_the_deposits_expire_after_the_window(api, commit, merchant) -> None:
    _add(api, commit)
    account = PayoutAccount.objects.get(merchant=merchant)
    right = _amounts(account.pk)
    with time_machine.travel(account.expires_at + datetime.timedelta(seconds=1), tick=False):
        response = _confirm(api, commit, right, "too-late")
    assert response.status_code == 409
    assert response.json()["type"] == "payout_verification_expired"
    account.refresh_from_db()
    assert account.status == PayoutAccount.Status.EXPIRED and account.attempts == 0
    assert account.verified_at is None


def test_the_hourly_task_expires_unconfirmed_accounts(api, commit, merchant) -> None:
    from payments.tasks import payout_accounts_expire

    _add(api, commit)
    account = PayoutAccount.objects.get(merchant=merchant)
    assert payout_accounts_expire.apply().get() == 0
    with time_machine.travel(account.expires_at + datetime.timedelta(minutes=1), tick=False):
        assert payout_accounts_expire.apply().get() == 1
    account.refresh_from_db()
    assert account.status == PayoutAccount.Status.EXPIRED


def test_a_confirmation_replayed_after_success_is_refused_and_its_key_replays_the_answer(
    api, commit, merchant
) -> None:
    _add(api, commit)
    account = PayoutAccount.objects.get(merchant=merchant)
    right = _amounts(account.pk)
    first = _confirm(api, commit, right, "confirm-once")
    assert first.status_code == 200
    # The same Idempotency-Key and body: the first answer again, as everywhere in the API.
    again = _confirm(api, commit, right, "confirm-once")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    # The same key with another body: refused as a reused key.
    reused = _confirm(api, commit, _wrong(right), "confirm-once")
    assert reused.status_code == 422 and reused.json()["type"] == "idempotency_key_reused"
    # A new key: the confirmation itself is replayed, and refused.
    replay = _confirm(api, commit, right, "confirm-twice")
    assert replay.status_code == 409
    assert replay.json()["type"] == "payout_account_already_verified"
    account.refresh_from_db()
    assert account.status == PayoutAccount.Status.VERIFIED and account.attempts == 0


def test_a_wrong_confirmation_replayed_with_its_key_is_not_counted_twice(
    api, commit, merchant
) -> None:
    _add(api, commit)
    account = PayoutAccount.objects.get(merchant=merchant)
    wrong = _wrong(_amounts(account.pk))
    first = _confirm(api, commit, wrong, "same-key")
    again = _confirm(api, commit, wrong, "same-key")
    assert first.status_code == again.status_code == 422
    assert again["Idempotent-Replayed"] == "true"
    account.refresh_from_db()
    assert account.attempts == 1


def test_a_confirmation_replayed_after_lockout_is_refused(api, commit, merchant) -> None:
    _add(api, commit)
    account = PayoutAccount.objects.get(merchant=merchant)
    right = _amounts(account.pk)
    for n in range(3):
        _confirm(api, commit, _wrong(right), f"w{n}")
    replay = _confirm(api, commit, _wrong(right), "w-after")
    assert replay.status_code == 409 and replay.json()["type"] == "payout_verification_locked"
    assert PayoutAccount.objects.get(pk=account.pk).attempts == 3


def test_a_returned_deposit_fails_the_verification_with_the_reason(api, commit, merchant) -> None:
    response = _add(api, commit, account_number=RETURNING_IBAN, country="AT")
    assert response.status_code == 201
    account = PayoutAccount.objects.get(merchant=merchant)
    assert account.status == PayoutAccount.Status.FAILED
    assert "account_closed" in account.failure_reason
    assert set(account.deposits.values_list("status", flat=True)) == {"returned"}
    shown = api.get("/api/v1/payout-account/").json()
    assert shown["status"] == "failed" and "account_closed" in shown["failure_reason"]
    refused = _confirm(api, commit, _amounts(account.pk), "after-return")
    assert refused.status_code == 409
    assert refused.json()["type"] == "payout_account_not_awaiting_confirmation"
    assert "account_closed" in refused.json()["message"]


def test_a_new_account_replaces_the_old_and_stops_payouts(api, commit, merchant) -> None:
    from payments.services.payout_accounts import merchant_payouts_set

    _add(api, commit)
    old = PayoutAccount.objects.get(merchant=merchant)
    _confirm(api, commit, _amounts(old.pk), "c1")
    merchant_payouts_set(merchant=merchant, enabled=True)
    response = _add(api, commit, key="add-2", account_number="DE75512108001245126199")
    assert response.status_code == 201
    old.refresh_from_db()
    merchant.refresh_from_db()
    assert old.status == PayoutAccount.Status.REPLACED
    assert merchant.payouts_enabled is False and merchant.verified_payout_account_id is None
    assert api.get("/api/v1/payout-account/").json()["account_number"] == "••••6199"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"account_number": "DE89370400440532013001"}, "account_number"),  # check digits
        ({"account_number": "DE8937040044053201300"}, "account_number"),  # too short
        ({"account_number": "GB82WEST12345698765432"}, "country"),  # not a DE IBAN
        ({"account_number": "12345678"}, "account_number"),  # DE needs an IBAN
        (
            {"country": "US", "account_number": "000123456789", "routing_code": "110000001"},
            "routing_code",
        ),
        (
            {"country": "GB", "account_number": "3141592", "routing_code": "200000"},
            "account_number",
        ),
        ({"holder_name": "   "}, "holder_name"),
        ({"currency": "EURO"}, "currency"),
        ({"routing_code": "110000000"}, "routing_code"),  # an IBAN needs none
    ],
)
def test_a_bad_account_is_refused_with_the_field_and_nothing_is_written(
    api, commit, merchant, overrides, field, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    response = _add(api, commit, **overrides)
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    number = overrides.get("account_number", IBAN).replace(" ", "")
    assert number not in response.content.decode()
    assert not PayoutAccount.objects.exists() and not MicroDeposit.objects.exists()
    assert not SandboxObject.objects.exists() and not IdempotencyRecord.objects.exists()
    assert all(number not in r.getMessage() for r in caplog.records)


def test_local_us_and_uk_accounts_are_accepted(api, commit, merchant) -> None:
    response = _add(
        api,
        commit,
        country="US",
        currency="USD",
        account_number="000123456789",
        routing_code="110000000",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["account_number"] == "••••6789"
    assert response.json()["scheme"] == "local"


def test_the_same_account_on_another_merchant_is_refused_and_nothing_is_written(
    api, commit, integration_user
) -> None:
    assert _add(api, commit).status_code == 201
    other = MerchantFactory(country="DE")
    other_api = client_for(issue(integration_user, ["merchants:write"], other))
    # Typed differently (no spaces, lower case): the blind index still finds it.
    response = _add(other_api, commit, key="other", account_number="de89370400440532013000")
    assert response.status_code == 409
    assert response.json()["type"] == "payout_account_in_use"
    assert not PayoutAccount.objects.filter(merchant=other).exists()
    assert MicroDeposit.objects.count() == 2


def test_another_merchants_account_is_not_there_for_a_token(api, commit, integration_user) -> None:
    _add(api, commit)
    other = MerchantFactory(country="DE")
    other_api = client_for(issue(integration_user, ["merchants:read", "merchants:write"], other))
    assert other_api.get("/api/v1/payout-account/").status_code == 404
    refused = _confirm(other_api, commit, [1, 2], "x")
    assert refused.status_code == 404
    assert other_api.get(f"/api/v1/payout-account/?merchant={other.pk + 1000}").status_code == 400


def test_adding_needs_an_idempotency_key_and_the_write_scope(
    integration_user, merchant, commit
) -> None:
    api = client_for(issue(integration_user, ["merchants:write"], merchant))
    response = api.post(
        "/api/v1/payout-account/", {**ACCOUNT, "account_number": IBAN}, format="json"
    )
    assert response.status_code == 400 and response.json()["type"] == "idempotency_key_missing"
    reader = client_for(issue(integration_user, ["merchants:read"], merchant))
    assert _add(reader, commit).status_code == 403
    assert not PayoutAccount.objects.exists()


def test_without_a_rail_adding_is_a_clear_503_and_nothing_is_written(api, commit, settings) -> None:
    settings.PAYOUT_RAIL = ""
    response = _add(api, commit)
    assert response.status_code == 503 and "PAYOUT_RAIL" in response.json()["message"]
    assert not PayoutAccount.objects.exists()


def test_reading_the_account_is_a_constant_number_of_queries(
    api, commit, django_assert_num_queries
) -> None:
    _add(api, commit)
    # The token; its last use (savepoint, the token locked, the update, release); the merchant;
    # the account; its deposits (one prefetch, amounts left out).
    with django_assert_num_queries(8):
        assert api.get("/api/v1/payout-account/").status_code == 200


def test_the_account_number_is_never_in_clear_in_the_database_or_the_logs(
    api, commit, merchant, caplog
) -> None:
    from tests.audits.test_no_plaintext_after_seeding import every_text_column, stored_texts

    caplog.set_level(logging.DEBUG)
    _add(api, commit)
    account = PayoutAccount.objects.get(merchant=merchant)
    _confirm(api, commit, _amounts(account.pk), "c")
    number = "DE89370400440532013000"
    assert account.account_number == number  # the ORM decrypts
    leaks = [
        (table, column)
        for table, column in every_text_column()
        for text in stored_texts(table, column)
        if number in text or "370400440532013000" in text or "Jana Novak Treasury" in text
    ]
    assert leaks == []
    assert all(number not in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_the_rails_webhooks_are_posted_to_our_endpoint_over_http(
    settings, live_server, integration_user
) -> None:
    """Committed for real, through the API and a live server: each credit's events are signed
    and POSTed to /webhooks/sandbox/, where they are verified, stored and processed."""
    settings.SANDBOX_WEBHOOK_URL = f"{live_server.url}/webhooks/sandbox/"
    merchant = MerchantFactory(country="DE")
    api = client_for(issue(integration_user, ["merchants:read", "merchants:write"], merchant))
    response = api.post(
        "/api/v1/payout-account/",
        {**ACCOUNT, "account_number": IBAN},
        format="json",
        HTTP_IDEMPOTENCY_KEY="http-1",
    )
    assert response.status_code == 201
    account = PayoutAccount.objects.get(merchant=merchant)
    assert account.status == PayoutAccount.Status.AWAITING_CONFIRMATION
    sent = SandboxObject.objects.filter(kind="event")
    assert sent.count() == 4
    assert {d for event in sent for d in event.data["deliveries"]} == {"posted: 200"}
    assert set(WebhookEvent.objects.values_list("source_ip", flat=True)) == {"127.0.0.1"}
    confirmed = api.post(
        "/api/v1/payout-account/confirm/",
        {"amounts": _amounts(account.pk)},
        format="json",
        HTTP_IDEMPOTENCY_KEY="http-2",
    )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "verified"


def test_a_forged_rail_event_is_refused_and_changes_nothing(api, commit, merchant, client) -> None:
    import json

    from payments.gateways.sandbox import signature_header

    _add(api, commit)
    deposit = MicroDeposit.objects.filter(account__merchant=merchant).first()
    assert deposit is not None
    body = json.dumps(
        {
            "id": "evt_forged",
            "type": "credit.returned",
            "created": int(timezone.now().timestamp()) + 60,
            "data": {"object": {"id": deposit.rail_reference, "status": "returned"}},
        }
    )
    response = client.post(
        "/webhooks/sandbox/",
        body,
        content_type="application/json",
        HTTP_SANDBOX_SIGNATURE=signature_header("not-the-secret", body),
    )
    assert response.status_code == 400
    assert not WebhookEvent.objects.filter(event_id="evt_forged").exists()
    deposit.refresh_from_db()
    assert deposit.status == MicroDeposit.Status.SETTLED
    assert PayoutAccount.objects.get(merchant=merchant).status == "awaiting_confirmation"


def test_a_rail_that_refuses_the_credit_leaves_nothing_behind(
    api, commit, merchant, monkeypatch
) -> None:
    from payments.rails import RailError
    from payments.rails.sandbox import SandboxRail

    calls = []
    original = SandboxRail.send_credit

    def refuse_the_second(self: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["amount"])
        if len(calls) == 2:
            raise RailError("Account blocked for credits.", rail="sandbox", code="blocked")
        return original(self, **kwargs)

    # The one stand-in: the sandbox rail never refuses a valid account by itself.
    monkeypatch.setattr(SandboxRail, "send_credit", refuse_the_second)
    response = _add(api, commit)
    assert response.status_code == 422 and "Account blocked" in response.json()["message"]
    assert not PayoutAccount.objects.exists() and not MicroDeposit.objects.exists()
    assert not SandboxObject.objects.exists() and not WebhookEvent.objects.exists()
