"""The audit exports read plain values, not model instances, and write pieces of rows: the bytes
are the same as one row at a time from instances, and the queries do not grow with the rows."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audits import context, selectors
from audits.crypto import envelope
from audits.crypto.reveal import reveal_state
from audits.evidence import row_as_dict
from audits.views import AUDIT_CSV_HEADER, _state_json
from config.streaming import neutralise
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(ops, officer):
    # Several people, a description a spreadsheet would run as a formula, rows with no state.
    payments = []
    for n, actor in enumerate([ops, officer, ops]):
        with context.bind(actor=actor, ip_address="198.51.100.7", device_id=f"dev-{n}"):
            payment = PaymentFactory(amount=1_000 + n)
            with transaction.atomic():
                payment.description = "=HYPERLINK(1)"
                payment.save()
            payments.append(payment)
    return payments


def _csv_one_row_at_a_time() -> str:
    """The CSV as the export wrote it before: one instance, one json.dumps, one write a row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([neutralise(cell) for cell in AUDIT_CSV_HEADER])
    for row in selectors.audit_search():
        cells = [
            row.created_at.isoformat(),
            row.action_type,
            row.object_type,
            row.object_id,
            row.user.username,
            row.ip_address,
            row.device_id or "",
            row.request_id,
            row.chain,
            row.seq,
            row.row_hash,
            json.dumps(reveal_state(row.object_type, row.before_state), sort_keys=True),
            json.dumps(reveal_state(row.object_type, row.after_state), sort_keys=True),
        ]
        writer.writerow([neutralise(cell) for cell in cells])
    return out.getvalue()


def test_the_csv_export_is_byte_for_byte_the_rows_one_at_a_time(client, auditor, trail) -> None:
    client.force_login(auditor)
    response = client.get(reverse("audits:export-csv"))
    body = b"".join(response.streaming_content).decode()
    assert body == _csv_one_row_at_a_time()
    assert '""description"": ""=HYPERLINK(1)""' in body


def test_the_evidence_rows_are_byte_for_byte_those_of_instances(client, auditor, trail) -> None:
    client.force_login(auditor)
    response = client.get(reverse("audits:export-evidence"))
    body = b"".join(response.streaming_content).decode()
    rows = selectors.audit_search().order_by("chain", "seq")
    expected = ",".join("\n" + json.dumps(row_as_dict(row), sort_keys=True) for row in rows)
    assert body.split(', "rows": [', 1)[1] == expected + "\n]}\n"
    assert len(json.loads(body)["rows"]) == len(rows) > 6


@pytest.mark.parametrize("name", ["audits:export-csv", "audits:export-evidence"])
def test_an_exports_queries_do_not_grow_with_its_rows(
    client, auditor, ops, officer, analyst, name
) -> None:
    client.force_login(auditor)
    with context.bind(actor=ops):
        PaymentFactory()

    def count() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            body = b"".join(client.get(reverse(name)).streaming_content)
        return len(queries), body.count(b"\n")

    few, lines_before = count()
    for actor in [ops, officer, analyst] * 10:  # rows of several people: no query per person
        with context.bind(actor=actor):
            PaymentFactory()
    many, lines_after = count()
    assert lines_after >= lines_before + 30
    assert many == few


def test_a_state_with_an_envelope_is_revealed_as_before() -> None:
    sealed = {"email": envelope.encrypt("ana@example.com", context="kyc.person.email"), "n": 1}
    assert _state_json("kyc.person", sealed) == json.dumps(
        reveal_state("kyc.person", sealed), sort_keys=True
    )
    assert "ana@example.com" in _state_json("kyc.person", sealed)
    plain = {"status": "captured", "amount": 100}
    assert _state_json("payments.payment", plain) == json.dumps(plain, sort_keys=True)
    assert _state_json("payments.payment", None) == "null"
