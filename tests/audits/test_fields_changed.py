"""A save limited to the fields that changed (receivers.fields_changed) writes the same row and
the same audit rows as a full save: the webhook worker saves payments that way."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.db import transaction

from audits.models import PaymentAudit
from audits.options import options_for
from audits.receivers import fields_changed
from audits.snapshot import snapshot
from audits.verify import verify_database
from payments.models import Payment
from payments.services.gateway_reports import payment_locked
from tests.payments.factories import PaymentFactory

pytestmark = [pytest.mark.django_db]


def _capture(payment: Payment, *, limited: bool) -> list[str] | None:
    with transaction.atomic():
        locked = payment_locked(payment.pk)
        locked.transition_to(Payment.Status.CAPTURED)
        locked.captured_amount = locked.amount
        changed = fields_changed(locked)
        locked.save(update_fields=changed if limited else None)
    return changed


def _last_audit(payment: Payment) -> PaymentAudit:
    return PaymentAudit.objects.filter(
        object_type="payments.payment", object_id=str(payment.pk)
    ).latest("seq")


def _last_entry(payment: Payment) -> LogEntry:
    return LogEntry.objects.filter(object_pk=str(payment.pk)).latest("pk")


def test_only_the_changed_fields_the_computed_ones_included() -> None:
    payment = PaymentFactory()
    changed = _capture(payment, limited=True)
    assert changed is not None
    assert set(changed) == {"status", "captured_amount", "updated_at"}


def test_the_row_and_both_trails_are_those_of_a_full_save() -> None:
    limited = PaymentFactory()
    full = PaymentFactory(merchant=limited.merchant)
    _capture(limited, limited=True)
    _capture(full, limited=False)
    masked = options_for(Payment).mask_fields  # type: ignore[union-attr]
    for payment in (limited, full):
        stored = Payment.objects.get(pk=payment.pk)
        assert (stored.status, stored.captured_amount) == ("captured", stored.amount)
        assert stored.customer_email == payment.customer_email
        audit = _last_audit(payment)
        assert audit.after_state == snapshot(stored, mask_fields=masked)
    limited_audit, full_audit = _last_audit(limited), _last_audit(full)
    varying = {"id", "updated_at", "created_at", "gateway_reference", "customer_email"}
    for state in ("before_state", "after_state"):
        left, right = getattr(limited_audit, state), getattr(full_audit, state)
        assert left.keys() == right.keys()
        assert {k: v for k, v in left.items() if k not in varying and "email" not in k} == {
            k: v for k, v in right.items() if k not in varying and "email" not in k
        }
    assert set(_last_entry(limited).changes_dict) == set(_last_entry(full).changes_dict)
    assert verify_database().ok


def test_without_the_stored_row_everything_is_saved() -> None:
    payment = PaymentFactory()
    payment.description = "no stored row read"
    assert fields_changed(payment) is None
