"""Every create, update and delete of an audited model writes one LogEntry and, for payment
records, one payment_audits row, with the actor, IP and device, in the change's transaction."""

from __future__ import annotations

from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from audits import context
from audits.crypto.reveal import reveal_changes, reveal_state
from audits.models import PaymentAudit
from audits.receivers import AuditOutsideTransaction
from kyc.models import CaseNote, KycCase, KycDocument
from payments.models import Chargeback, Merchant, Payment, Refund, WebhookEvent
from tests.factories import UserFactory
from tests.kyc.factories import CaseNoteFactory, KycCaseFactory, KycDocumentFactory
from tests.payments.factories import (
    ChargebackFactory,
    MerchantFactory,
    PaymentFactory,
    RefundFactory,
)

pytestmark = pytest.mark.django_db

IP = "203.0.113.7"
DEVICE = "device-abc-123"

PAYMENT_RECORDS: list[tuple[type, Any, str, Any]] = [
    (Merchant, MerchantFactory, "contact_name", "Jo Bloggs"),
    (Payment, PaymentFactory, "description", "order 1234"),
    (Refund, RefundFactory, "reason_detail", "customer wrote in"),
    (Chargeback, ChargebackFactory, "reason", "product_not_received"),
]
OTHER_AUDITED: list[tuple[type, Any, str, Any]] = [
    (KycCase, KycCaseFactory, "risk_score", 55),
    (KycDocument, KycDocumentFactory, "original_name", "passport.pdf"),
    (CaseNote, CaseNoteFactory, "text", "Rechecked."),
]


def _entries_for(obj: Any) -> Any:
    return LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_pk=str(obj.pk)
    )


def _audits_for(obj: Any) -> Any:
    return PaymentAudit.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))


@pytest.fixture
def actor() -> Any:
    return UserFactory(username="clerk", email="clerk@example.com")


@pytest.mark.parametrize(
    ("model", "factory", "field", "value"),
    PAYMENT_RECORDS,
    ids=lambda v: getattr(v, "__name__", None),
)
def test_create_update_delete_each_write_one_row_in_both_trails(
    model, factory, field, value, actor
) -> None:
    with context.bind(actor=actor, ip_address=IP, device_id=DEVICE, source="web"):
        obj = factory()
        created_audit = _audits_for(obj).get()
        assert _entries_for(obj).count() == 1

        before = getattr(obj, field)
        with transaction.atomic():
            setattr(obj, field, value)
            obj.save()
        updated = _audits_for(obj).exclude(pk=created_audit.pk).get()
        assert _entries_for(obj).count() == 2

        pk = obj.pk
        with transaction.atomic():
            obj.delete()
        obj.pk = pk

    rows = list(_audits_for(obj).order_by("created_at"))
    assert [r.action_type for r in rows] == [
        f"web.{model._meta.model_name}.create",
        f"web.{model._meta.model_name}.update",
        f"web.{model._meta.model_name}.delete",
    ]
    for row in rows:
        assert row.user_id == actor.pk
        assert row.ip_address == IP
        assert row.device_id == DEVICE
    assert created_audit.before_state is None
    assert created_audit.after_state["id"] == pk
    # Encrypted fields (the merchant's contact) are stored as envelopes and read back revealed.
    assert (updated.after_state[field] != value) == (model is Merchant)
    label = model._meta.label_lower
    assert reveal_state(label, updated.before_state)[field] == before
    assert reveal_state(label, updated.after_state)[field] == value
    assert reveal_state(label, rows[2].before_state)[field] == value
    assert rows[2].after_state is None

    entries = list(_entries_for(obj).order_by("timestamp"))
    assert [e.action for e in entries] == [
        LogEntry.Action.CREATE,
        LogEntry.Action.UPDATE,
        LogEntry.Action.DELETE,
    ]
    for entry in entries:
        assert entry.actor_id == actor.pk
        assert entry.actor_email == "clerk@example.com"
        assert entry.remote_addr == IP
        assert entry.additional_data["device_id"] == DEVICE
    assert reveal_changes(label, entries[1].changes)[field] == [str(before), str(value)]


@pytest.mark.parametrize(
    ("model", "factory", "field", "value"),
    OTHER_AUDITED,
    ids=lambda v: getattr(v, "__name__", None),
)
def test_kyc_models_write_one_log_entry_per_change(model, factory, field, value, actor) -> None:
    with context.bind(actor=actor, ip_address=IP, device_id=DEVICE):
        obj = factory()
        with transaction.atomic():
            setattr(obj, field, value)
            obj.save()
    entries = list(_entries_for(obj).order_by("timestamp"))
    assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    assert all(e.actor_id == actor.pk and e.remote_addr == IP for e in entries)
    assert not _audits_for(obj).exists()


def test_a_save_that_changes_nothing_writes_nothing() -> None:
    merchant = MerchantFactory()
    counts = (PaymentAudit.objects.count(), LogEntry.objects.count())
    with transaction.atomic():
        Merchant.objects.get(pk=merchant.pk).save()
    assert (PaymentAudit.objects.count(), LogEntry.objects.count()) == counts


def test_a_rolled_back_change_leaves_no_audit_row() -> None:
    payment = PaymentFactory()
    counts = (PaymentAudit.objects.count(), LogEntry.objects.count())
    with pytest.raises(RuntimeError), transaction.atomic():
        payment.description = "never happened"
        payment.save()
        raise RuntimeError("the change fails after the save")
    assert (PaymentAudit.objects.count(), LogEntry.objects.count()) == counts
    assert Payment.objects.get(pk=payment.pk).description == ""


def test_work_without_a_person_is_attributed_to_the_system_user() -> None:
    merchant = MerchantFactory()
    row = _audits_for(merchant).get()
    assert row.user.username == context.SYSTEM_USERNAME
    assert row.ip_address == context.LOOPBACK
    assert row.action_type == "system.merchant.create"
    assert not row.user.is_active and not row.user.has_usable_password()


def test_sensitive_fields_are_masked_in_both_trails() -> None:
    payment = PaymentFactory(customer_email="jane.doe@example.com")
    row = _audits_for(payment).get()
    assert "jane.doe@example.com" not in str(row.after_state)
    entry = _entries_for(payment).get()
    assert "jane.doe@example.com" not in str(entry.changes)


def test_webhook_payload_is_kept_out_of_the_log() -> None:
    with transaction.atomic():
        event = WebhookEvent.objects.create(
            provider="stripe",
            event_id="evt_1",
            event_type="charge.refunded",
            payload={"customer_email": "x@example.com"},
        )
    entry = _entries_for(event).get()
    assert "payload" not in entry.changes


def test_update_fields_save_records_the_changed_fields_only() -> None:
    payment = PaymentFactory()
    with transaction.atomic():
        payment.description = "partial"
        payment.save(update_fields=["description", "updated_at"])
    row = _audits_for(payment).order_by("-created_at").first()
    assert row.after_state["description"] == "partial"
    assert row.before_state["description"] == ""


@pytest.mark.django_db(transaction=True)
def test_saving_outside_a_transaction_is_refused() -> None:
    with pytest.raises(AuditOutsideTransaction, match=r"inside transaction\.atomic"):
        Merchant(legal_name="Loose Ltd", country="GB", contact_email="a@b.example").save()
    assert not Merchant.objects.exists()
    # The security trail holds the roles the flush's migrate signal gave their permissions.
    assert not PaymentAudit.objects.exclude(action_type__startswith="security.").exists()


def test_an_audited_change_writes_both_trails_in_one_statement_on_postgresql(actor) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    payment = PaymentFactory()
    with (
        context.bind(actor=actor, ip_address=IP, device_id=DEVICE, source="web"),
        transaction.atomic(),
        CaptureQueriesContext(connection) as queries,
    ):
        payment.description = "counted"
        payment.save()
    statements = [q["sql"] for q in queries.captured_queries]
    if connection.vendor == "postgresql":
        # The before-state, the change, and one statement for the LogEntry and the chain row.
        assert len(statements) == 3, statements
        assert "auditlog_logentry" in statements[2] and "payment_audits" in statements[2]
    else:
        # The before-state, the change, the LogEntry, claim the chain place, the row, the head.
        assert len(statements) == 6, statements
    entry = _entries_for(payment).get(action=LogEntry.Action.UPDATE)
    assert entry.object_repr == str(payment)
    assert entry.object_id == payment.pk
    assert entry.cid is None and entry.actor_id == actor.pk
    assert entry.changes["description"][1] == "counted"
    assert _audits_for(payment).filter(action_type="web.payment.update").count() == 1
