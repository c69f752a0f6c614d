"""/audits/: search, object timeline, CSV and evidence exports that verify offline."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audits import context
from audits.models import PaymentAudit
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(ops):
    with context.bind(actor=ops, ip_address="198.51.100.7", device_id="dev-7"):
        payments = [PaymentFactory(amount=1_000 + n) for n in range(12)]
        for payment in payments[:4]:
            with transaction.atomic():
                payment.description = "edited"
                payment.save()
    return payments


@pytest.mark.parametrize("fixture", ["auditor", "officer"])
def test_auditors_and_officers_search_the_trail(client, request, trail, fixture) -> None:
    client.force_login(request.getfixturevalue(fixture))
    page = client.get(
        reverse("audits:search"),
        {"actor": "ops", "ip_address": "198.51.100.7", "action": "payment.update"},
    ).content.decode()
    # Work bound to ops outside a request (no source given) reads as system work done by ops.
    assert page.count("system.payment.update") == 4


@pytest.mark.parametrize("fixture", ["analyst", "ops"])
def test_others_cannot_read_the_trail(client, request, fixture) -> None:
    client.force_login(request.getfixturevalue(fixture))
    assert client.get(reverse("audits:search")).status_code == 403
    assert client.get(reverse("audits:export-csv")).status_code == 403


def test_search_costs_the_same_queries_at_any_size(client, auditor, ops) -> None:
    client.force_login(auditor)
    with context.bind(actor=ops):
        PaymentFactory()

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("audits:search"), {"actor": "ops"}).status_code == 200
        return len(queries)

    few = count()
    with context.bind(actor=ops):
        for _ in range(30):
            PaymentFactory()
    assert count() == few


def test_an_objects_timeline_shows_both_trails(client, auditor, trail) -> None:
    client.force_login(auditor)
    payment = trail[0]
    page = client.get(reverse("audits:object", args=["payments.payment", payment.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Before and after" in text and "description" in text


def test_csv_export_streams_every_matching_row(client, auditor, trail) -> None:
    client.force_login(auditor)
    response = client.get(reverse("audits:export-csv"), {"object_type": "payments.payment"})
    assert response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) - 1 == PaymentAudit.objects.filter(object_type="payments.payment").count()
    assert rows[0][:2] == ["created_at", "action_type"]


def _evidence(client, tmp_path, **filters):
    response = client.get(reverse("audits:export-evidence"), filters)
    path = tmp_path / "evidence.json"
    path.write_bytes(b"".join(response.streaming_content))
    return path


def test_an_exported_evidence_file_verifies_offline(client, auditor, trail, tmp_path) -> None:
    client.force_login(auditor)
    path = _evidence(client, tmp_path, actor="ops")
    document = json.loads(path.read_text())
    assert document["format"] == "backoffice-audit-evidence/1"
    assert len(document["rows"]) == PaymentAudit.objects.filter(user__username="ops").count()
    out = io.StringIO()
    call_command("verify_audit_chain", "--file", str(path), stdout=out)
    assert "OK: every row matches" in out.getvalue()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda row: row["after_state"].update(amount=1),
        lambda row: row.update(ip_address="10.9.9.9"),
        lambda row: row.update(user_id=row["user_id"] + 1),
        lambda row: row.update(prev_hash="0" * 64),
    ],
)
def test_an_edited_evidence_file_does_not(client, auditor, trail, tmp_path, tamper) -> None:
    client.force_login(auditor)
    path = _evidence(client, tmp_path, actor="ops")
    document = json.loads(path.read_text())
    victim = next(r for r in document["rows"] if r["after_state"] and r["seq"] > 1)
    tamper(victim)
    path.write_text(json.dumps(document))
    with pytest.raises(CommandError, match=f"row {victim['id']}"):
        call_command(
            "verify_audit_chain", "--file", str(path), stdout=io.StringIO(), stderr=io.StringIO()
        )


def test_a_file_that_is_not_evidence_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{}")
    with pytest.raises(CommandError, match="not an evidence file"):
        call_command(
            "verify_audit_chain", "--file", str(path), stdout=io.StringIO(), stderr=io.StringIO()
        )
