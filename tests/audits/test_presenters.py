"""Timelines as people read them: names, labelled statuses, money with its currency, never None,
oldest first."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.db import transaction
from django.urls import reverse

from audits import context
from audits.models import PaymentAudit
from audits.presenters import audit_rows_readable, log_entries_readable
from payments.models import Chargeback
from tests.payments.factories import ChargebackFactory, RefundFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def assigned(ops) -> Chargeback:
    ops.first_name, ops.last_name = "Olivia", "Price"
    ops.save()
    with context.bind(actor=ops):
        chargeback = ChargebackFactory(amount=1_500, currency="EUR")
        with transaction.atomic():
            chargeback.assignee = ops
            chargeback.status = Chargeback.Status.UNDER_REVIEW
            chargeback.save()
    return chargeback


def _lines(entries) -> list[str]:
    return [str(line) for entry in entries for line in entry.changes]


def test_a_disputes_audit_rows_read_with_names_labels_and_money(assigned) -> None:
    rows = PaymentAudit.objects.filter(object_type="payments.chargeback")
    entries = audit_rows_readable(list(rows))
    lines = _lines(entries)
    assert "Amount: 15.00 EUR" in lines  # created: what it is, in major units
    assert "Status: Needs Response" in lines
    assert "Assignee: nobody → Olivia Price" in lines
    assert "Status: Needs Response → Under Review" in lines
    assert [e.what for e in entries] == [
        f"Chargeback {assigned.pk} created",
        f"Chargeback {assigned.pk} changed",
    ]
    assert all(e.who == "Olivia Price" for e in entries)
    assert not any("None" in line or f" {assigned.assignee_id}" in line for line in lines)


def test_a_refund_is_shown_in_its_payments_currency(ops) -> None:
    with context.bind(actor=ops):
        refund = RefundFactory(amount=2_550, payment__currency="GBP")
    rows = PaymentAudit.objects.filter(object_type="payments.refund", object_id=str(refund.pk))
    lines = _lines(audit_rows_readable(list(rows), currency="GBP"))
    assert "Amount: 25.50 GBP" in lines
    assert "Status: Pending" in lines and "Reason: Requested By Customer" in lines


def test_entries_come_oldest_first_whatever_order_they_are_given(assigned) -> None:
    entries = list(LogEntry.objects.filter(object_pk=str(assigned.pk)).order_by("-timestamp"))
    readable = log_entries_readable(entries)
    assert [e.when for e in readable] == sorted(e.timestamp for e in entries)
    assert readable[0].what.endswith("created")
    assert "Assignee: nobody → Olivia Price" in _lines(readable)


def test_names_are_looked_up_once_per_related_model(assigned, ops, django_assert_num_queries):
    with context.bind(actor=ops), transaction.atomic():
        assigned.status = Chargeback.Status.WON
        assigned.assignee = None
        assigned.save()
    rows = list(
        PaymentAudit.objects.filter(object_type="payments.chargeback").select_related("user")
    )
    with django_assert_num_queries(2):  # users named in the diffs; payments named in the diffs
        lines = _lines(audit_rows_readable(rows))
    assert "Assignee: Olivia Price → nobody" in lines


def test_the_payment_page_timeline_reads_as_the_presenter_says(client, ops, assigned) -> None:
    client.force_login(ops)
    page = client.get(reverse("payments:payment-detail", args=[assigned.payment_id]))
    text = page.content.decode()
    assert "Assignee: nobody → Olivia Price" in text
    assert "Amount: 15.00 EUR" in text and "None" not in text.split("<h2>Timeline</h2>")[1]


def test_the_object_page_formats_a_refunds_amount_with_its_payments_currency(
    client, auditor, ops
) -> None:
    with context.bind(actor=ops):
        refund = RefundFactory(amount=1_234, payment__currency="USD")
    client.force_login(auditor)
    text = client.get(reverse("audits:object", args=["payments.refund", refund.pk])).content
    assert "Amount: 12.34 USD" in text.decode()


def test_created_at_and_other_bookkeeping_are_left_out(assigned) -> None:
    lines = _lines(audit_rows_readable(list(PaymentAudit.objects.all())))
    assert not any(line.startswith(("Created at", "Updated at", "ID")) for line in lines)
