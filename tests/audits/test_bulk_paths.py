from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.db import transaction

from audits.models import PaymentAudit
from audits.querysets import AuditBypassRefused
from kyc.models import CaseNote, KycCase, KycDocument
from payments.models import Chargeback, Merchant, Payment, Refund, WebhookEvent
from tests.payments.factories import MerchantFactory, PaymentFactory

pytestmark = pytest.mark.django_db

AUDITED = [Merchant, Payment, Refund, Chargeback, WebhookEvent, KycCase, KycDocument, CaseNote]


@pytest.mark.parametrize("model", AUDITED, ids=lambda m: m.__name__)
def test_queryset_update_is_refused(model) -> None:
    PaymentFactory()
    counts = (PaymentAudit.objects.count(), LogEntry.objects.count())
    with pytest.raises(AuditBypassRefused, match="without writing the audit trail"):
        model.objects.all().update(pk=1)
    assert (PaymentAudit.objects.count(), LogEntry.objects.count()) == counts


@pytest.mark.parametrize("model", AUDITED, ids=lambda m: m.__name__)
def test_bulk_create_and_bulk_update_are_refused(model) -> None:
    with pytest.raises(AuditBypassRefused):
        model.objects.bulk_create([model()])
    with pytest.raises(AuditBypassRefused):
        model.objects.bulk_update([model()], ["pk"])
    assert not model.objects.exists()


def test_payment_status_cannot_be_changed_in_bulk() -> None:
    payment = PaymentFactory()
    with pytest.raises(AuditBypassRefused):
        Payment.objects.filter(pk=payment.pk).update(status="captured")
    assert Payment.objects.get(pk=payment.pk).status == "pending"


def test_queryset_delete_is_audited_row_by_row() -> None:
    merchants = [MerchantFactory() for _ in range(3)]
    with transaction.atomic():
        Merchant.objects.filter(pk__in=[m.pk for m in merchants]).delete()
    deletes = PaymentAudit.objects.filter(action_type__endswith="merchant.delete")
    assert sorted(deletes.values_list("object_id", flat=True)) == sorted(
        str(m.pk) for m in merchants
    )
    assert LogEntry.objects.filter(action=LogEntry.Action.DELETE).count() == 3


@pytest.mark.parametrize("model", AUDITED, ids=lambda m: m.__name__)
def test_the_base_manager_refuses_bulk_writes_too(model) -> None:
    with pytest.raises(AuditBypassRefused):
        model._base_manager.all().update(pk=1)
    with pytest.raises(AuditBypassRefused):
        model._base_manager.bulk_create([model()])
