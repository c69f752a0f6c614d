"""The fraud review screens and the console's rule editor: the queue, an alert's explanation,
assign / note / close feeding each rule's precision, a rule's dry run and its next version."""

from __future__ import annotations

import json
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from payments.fraud.models import FraudAlert, FraudRule
from payments.fraud.services import fraud_rule_create
from payments.models import Merchant
from payments.services.payments import payment_record
from tests.helpers import row_counts
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

BURST = {"subject": "payment", "key": "merchant", "window_minutes": 60, "max_count": 1}


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _burst_rule(officer: User, score: int = 60) -> FraudRule:
    return fraud_rule_create(
        key="merchant-burst",
        name="Merchant burst",
        kind="velocity_count",
        params=BURST,
        score=score,
        actor=officer,
    )


def _alert(merchant: Merchant | None = None) -> FraudAlert:
    merchant = merchant or MerchantFactory()
    for _ in range(2):
        payment_record(merchant=merchant, gateway="stripe", amount=2_500, currency="EUR")
    return FraudAlert.objects.filter(merchant=merchant).get()


def test_the_queue_shows_open_alerts_with_their_reason_in_constant_queries(
    officer: User, ops: User, django_assert_max_num_queries: Any
) -> None:
    client = _client(ops)
    empty = client.get(reverse("payments:fraud-alerts"))
    assert "No open alerts" in empty.content.decode()
    _burst_rule(officer)
    for _ in range(3):
        _alert()
    with django_assert_max_num_queries(6):
        # session, user, the user's permissions (2: group and own), the alerts joined to
        # merchant, payment, assignee and evaluation
        page = client.get(reverse("payments:fraud-alerts"))
    html = page.content.decode()
    assert html.count("Merchant burst (+60): 2 payments from this merchant in 1 hour") == 3


def test_an_alert_names_each_rule_and_its_figures(officer: User, analyst: User) -> None:
    _burst_rule(officer)
    alert = _alert()
    html = _client(analyst).get(reverse("payments:fraud-alert", args=[alert.pk])).content.decode()
    assert "Merchant burst (v1)" in html
    assert "Merchant burst: 2 payments from this merchant in 1 hour, above the limit of 1" in html
    assert "Close the alert" in html


def test_assign_note_and_close_as_fraud_feed_the_rules_precision(
    officer: User, ops: User, analyst: User
) -> None:
    _burst_rule(officer)
    first, second = _alert(), _alert()
    client = _client(ops)
    action = "payments:fraud-alert-action"
    client.post(reverse(action, args=[first.pk, "assign"]), {"assignee": analyst.pk})
    client.post(reverse(action, args=[first.pk, "note"]), {"text": "card seen on 3 shops"})
    client.post(reverse(action, args=[first.pk, "close"]), {"outcome": "fraud", "note": "yes"})
    client.post(
        reverse(action, args=[second.pk, "close"]), {"outcome": "false_positive", "note": "ok"}
    )
    first.refresh_from_db()
    assert (first.status, first.assignee, first.closed_by) == ("fraud", analyst, ops)
    assert [n.text for n in first.notes.all()] == ["card seen on 3 shops", "yes"]
    assert LogEntry.objects.get_for_object(first).count() == 3  # raised, assigned, closed
    rules_page = _client(officer).get(reverse("payments:fraud-rules")).content.decode()
    assert "50 %" in rules_page  # one fraud, one false positive


def test_closing_without_an_outcome_or_twice_is_refused_and_writes_nothing(
    officer: User, ops: User
) -> None:
    _burst_rule(officer)
    alert = _alert()
    client = _client(ops)
    url = reverse("payments:fraud-alert-action", args=[alert.pk, "close"])
    before = row_counts()
    response = client.post(url, {"note": "no outcome"}, follow=True)
    assert "Choose fraud or false positive" in response.content.decode()
    assert client.post(url, {"outcome": "maybe", "note": "x"}).status_code == 302
    assert row_counts() == before
    client.post(url, {"outcome": "fraud", "note": "yes"})
    before = row_counts()
    again = client.post(url, {"outcome": "false_positive", "note": "no"}, follow=True)
    assert "is closed" in again.content.decode()
    assert row_counts() == before


def test_an_unknown_action_is_a_404_and_writes_nothing(officer: User, ops: User) -> None:
    _burst_rule(officer)
    alert = _alert()
    client = _client(ops)
    before = row_counts()
    url = reverse("payments:fraud-alert-action", args=[alert.pk, "delete"])
    assert client.post(url).status_code == 404
    assert row_counts() == before


def test_a_dry_run_shows_what_a_changed_rule_would_have_fired_on_and_saves_nothing(
    officer: User,
) -> None:
    rule = _burst_rule(officer)
    merchant = MerchantFactory()
    for _ in range(4):
        payment_record(merchant=merchant, gateway="stripe", amount=2_500, currency="EUR")
    url = reverse("payments:fraud-rule", args=[rule.pk])
    looser = {**BURST, "max_count": 3}
    client = _client(officer)
    before = row_counts()
    response = client.post(
        url,
        {"name": rule.name, "params": json.dumps(looser), "score": 60, "dry_run": "1"},
    )
    assert response.status_code == 200
    html = " ".join(response.content.decode().split())
    assert "4 candidates of the last 90 days replayed" in html
    assert (
        "the changed rule fires on <strong>1</strong> at 1 merchant, the live version on 3" in html
    )
    assert "4 payments from this merchant in 1 hour, above the limit of 3" in html
    assert row_counts() == before


def test_saving_a_change_on_the_screen_writes_version_two(officer: User) -> None:
    rule = _burst_rule(officer)
    url = reverse("payments:fraud-rule", args=[rule.pk])
    body = {"name": "Burst", "params": json.dumps(BURST), "score": 70, "enabled": "on"}
    response = _client(officer).post(url, {**body, "note": "score up", "save": "1"})
    assert response.status_code == 302
    live = FraudRule.objects.get(key=rule.key, is_current=True)
    assert (live.version, live.score, live.name, live.change_note) == (2, 70, "Burst", "score up")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ("{not json", "Not valid JSON"),
        (json.dumps({**BURST, "key": "shoe"}), "must be one of merchant"),
        (json.dumps({**BURST, "max_count": -1}), "must be at least 1"),
    ],
)
def test_a_bad_change_is_shown_next_to_its_field_and_writes_nothing(
    officer: User, params: str, error: str
) -> None:
    rule = _burst_rule(officer)
    url = reverse("payments:fraud-rule", args=[rule.pk])
    client = _client(officer)
    before = row_counts()
    for button in ("dry_run", "save"):
        body = {"name": "Burst", "params": params, "score": 70, "note": "x", button: "1"}
        response = client.post(url, body)
        assert response.status_code == 400
        assert error in response.content.decode()
    assert row_counts() == before


def test_operations_read_rules_but_cannot_change_them(officer: User, ops: User) -> None:
    rule = _burst_rule(officer)
    client = _client(ops)
    url = reverse("payments:fraud-rule", args=[rule.pk])
    page = client.get(url).content.decode()
    assert "Versions" in page and "Save as version" not in page
    before = row_counts()
    body = {"name": "x", "params": json.dumps(BURST), "score": 1, "note": "x", "save": "1"}
    assert client.post(url, body).status_code == 403
    assert row_counts() == before


def test_the_console_adds_a_rule_and_saves_a_change_as_the_next_version(officer: User) -> None:
    client = _client(officer)
    add = reverse("admin:payments_fraudrule_add")
    response = client.post(
        add,
        {
            "key": "quick-refund",
            "name": "Quick refund",
            "kind": "pay_then_refund",
            "params": json.dumps({"within_minutes": 30, "min_fraction": 0.9}),
            "score": 40,
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    first = FraudRule.objects.get(key="quick-refund")
    change = reverse("admin:payments_fraudrule_change", args=[first.pk])
    response = client.post(
        change,
        {
            "name": "Quick refund",
            "params": json.dumps({"within_minutes": 60, "min_fraction": 0.9}),
            "score": 40,
            "enabled": "on",
            "change_note": "an hour",
        },
    )
    assert response.status_code == 302
    first.refresh_from_db()
    live = FraudRule.objects.get(key="quick-refund", is_current=True)
    assert (first.is_current, live.version, live.params["within_minutes"]) == (False, 2, 60)
    # The retired version is history: read-only.
    assert client.post(change, {"name": "again", "change_note": "x"}).status_code == 403


def test_the_console_shows_a_bad_parameter_next_to_the_field_and_writes_nothing(
    officer: User,
) -> None:
    client = _client(officer)
    before = row_counts()
    response = client.post(
        reverse("admin:payments_fraudrule_add"),
        {
            "key": "bad",
            "name": "Bad",
            "kind": "pay_then_refund",
            "params": json.dumps({"within_minutes": 30}),
            "score": 40,
        },
    )
    assert response.status_code == 200
    assert "Parameter &#x27;min_fraction&#x27; is required" in response.content.decode()
    assert row_counts() == before


def test_operations_cannot_add_rules_in_the_console(ops: User) -> None:
    client = _client(ops)
    before = row_counts()
    response = client.post(reverse("admin:payments_fraudrule_add"), {"key": "x"})
    assert response.status_code == 403
    assert row_counts() == before
