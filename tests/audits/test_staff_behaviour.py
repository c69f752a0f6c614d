"""Staff behaviour rules: exports, downloads, approvals and refunds far above the person's
usual rate, acts at hours the person is not active, sign-ins from a new network. Each finding
is a `security.staff_unusual` row naming the rule and its figures; ordinary days stay quiet."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from audits.models import PaymentAudit, StaffActivity
from payments.models import Payment
from payments.services.payments import payment_record, payment_set_status
from payments.services.refunds import refund_request
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

NOON = datetime.datetime(2026, 11, 20, 10, 15, tzinfo=datetime.UTC)  # the usual hour


def _history(user: User, kind: str, *, per_day: int, days: int = 29, hour: int = 10) -> None:
    """The person's usual: `per_day` acts of `kind` at `hour` UTC on each of the last days."""
    StaffActivity.objects.bulk_create(
        StaffActivity(
            user=user,
            kind=kind,
            at=(NOON - datetime.timedelta(days=d)).replace(hour=hour, minute=i % 60),
        )
        for d in range(1, days + 1)
        for i in range(per_day)
    )


def _findings(user: User) -> list[dict[str, Any]]:
    return [
        row.after_state
        for row in PaymentAudit.objects.filter(
            action_type="security.staff_unusual", object_id=str(user.pk)
        ).order_by("created_at")
    ]


def _export(client: Client) -> None:
    response = client.get("/payments/export.csv")
    assert response.status_code == 200
    b"".join(response.streaming_content)  # type: ignore[attr-defined]


def test_exports_far_above_the_persons_usual_rate_are_trailed(ops: User) -> None:
    _history(ops, "export", per_day=1)
    client = Client()
    with time_machine.travel(NOON, tick=False):
        client.force_login(ops)
        for _ in range(10):
            _export(client)
        assert _findings(ops) == []  # ten: the floor (STAFF_RATE_MIN), not above it
        _export(client)
    [finding] = _findings(ops)
    assert (finding["rule"], finding["activity"]) == ("rate", "export")
    assert finding["figures"] == {"last_24h": 11, "usual_per_day": 1.0, "limit": 10}
    assert finding["explanation"] == (
        "11 exports in 24 hours, above 10 (3 x the usual 1.0 a day over 30 days)"
    )


def test_a_busy_person_doing_their_usual_amount_is_quiet(ops: User) -> None:
    _history(ops, "export", per_day=8)
    client = Client()
    with time_machine.travel(NOON, tick=False):
        client.force_login(ops)
        for _ in range(15):
            _export(client)
    assert _findings(ops) == []


def test_an_act_at_an_hour_the_person_never_works_is_trailed(ops: User) -> None:
    _history(ops, "export", per_day=2)  # 58 acts, all at 10:00 UTC
    client = Client()
    with time_machine.travel(NOON, tick=False):
        client.force_login(ops)
        _export(client)
    assert _findings(ops) == []
    with time_machine.travel(NOON.replace(hour=3), tick=False):
        _export(client)
    [finding] = _findings(ops)
    assert finding["rule"] == "unusual_hour" and finding["figures"]["hour_utc"] == 3
    assert finding["explanation"].startswith("active at 03:00 UTC, an hour that held 0% of")


def test_refunds_and_approvals_are_counted_for_the_person(ops: User, settings: Any) -> None:
    from django.contrib.auth.models import Group

    from audits import roles
    from payments.core.approvals import approval_approve

    settings.REFUND_APPROVAL_THRESHOLD = 1
    other = User.objects.create_user("ops2", is_staff=True)
    other.groups.add(Group.objects.get(name=roles.PAYMENTS_OPERATIONS))
    payment = payment_record(
        merchant=MerchantFactory(), gateway="stripe", amount=5_000, currency="EUR"
    )
    payment = payment_set_status(payment=payment, status=Payment.Status.CAPTURED)
    approval = refund_request(payment=payment, amount=100, reason="duplicate", actor=ops).approval
    assert approval is not None
    approval_approve(request=approval, actor=other)
    assert list(StaffActivity.objects.values_list("user__username", "kind")) == [
        ("ops2", "approval"),
        ("ops", "refund"),
    ]


def test_a_sign_in_from_a_new_network_is_trailed_and_a_first_one_is_not(
    analyst: User, settings: Any
) -> None:
    settings.STAFF_REQUIRE_OTP = False
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]

    def sign_in(ip: str) -> None:
        response = Client().post(
            "/admin/login/?next=/overview/",
            {"username": "analyst", "password": "a-long-test-passw0rd"},
            HTTP_X_FORWARDED_FOR=ip,
            HTTP_X_DEVICE_ID="laptop-1",
        )
        assert response.status_code == 302

    sign_in("203.0.113.10")
    sign_in("203.0.113.99")  # the same /24
    assert _findings(analyst) == []
    sign_in("198.51.100.4")
    [finding] = _findings(analyst)
    assert finding["rule"] == "new_network"
    assert finding["explanation"] == (
        "signed in from 198.51.100.0/24, a network this person never used"
    )
    assert StaffActivity.objects.filter(user=analyst, kind="signin").count() == 3
