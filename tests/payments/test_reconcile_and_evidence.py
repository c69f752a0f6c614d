from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from audits.models import PaymentAudit
from payments import services
from payments.gateways import get_gateway
from payments.models import Chargeback, ChargebackEvidence, EvidenceFile, Payment
from payments.uploads import UploadRejected
from tests.payments.factories import CapturedPaymentFactory, ChargebackFactory, MerchantFactory

pytestmark = pytest.mark.django_db


def test_reconcile_fixes_what_webhooks_missed(local_stripe) -> None:
    merchant = MerchantFactory()
    payments = [
        services.payment_authorize(
            merchant=merchant,
            gateway="stripe",
            amount=2_000,
            currency="EUR",
            payment_method="pm_card_visa",
            capture=False,
        )
        for _ in range(3)
    ]
    client = get_gateway("stripe").client
    client.v1.payment_intents.capture(payments[0].gateway_reference)  # webhook lost
    client.v1.payment_intents.cancel(payments[1].gateway_reference)  # webhook lost
    out = io.StringIO()
    call_command("reconcile", "--gateway", "stripe", "--since", "2000-01-01", stdout=out)
    statuses = [Payment.objects.get(pk=p.pk).status for p in payments]
    assert statuses == ["captured", "canceled", "authorized"]
    assert "Checked 3 payments: 2 fixed" in out.getvalue()
    assert f"FIXED payment {payments[0].pk}" in out.getvalue()
    assert PaymentAudit.objects.filter(action_type="reconcile.payment.update").count() == 2


def test_reconcile_refuses_a_bad_date_and_an_unconfigured_gateway(settings) -> None:
    with pytest.raises(CommandError, match="takes a date"):
        call_command("reconcile", "--gateway", "stripe", "--since", "yesterday")
    settings.STRIPE_API_KEY = ""
    with pytest.raises(CommandError, match="STRIPE_API_KEY"):
        call_command("reconcile", "--gateway", "stripe", "--since", "2026-01-01")


@pytest.fixture
def braintree_chargeback(local_braintree):
    payment = CapturedPaymentFactory(gateway="braintree", gateway_reference="bt_ev")
    return ChargebackFactory(payment=payment, gateway="braintree", gateway_reference="dp_ev")


PDF = b"%PDF-1.4 receipt\n%%EOF\n"


def test_evidence_is_a_draft_until_submitted_once(
    braintree_chargeback, ops, local_braintree
) -> None:
    services.evidence_save_draft(
        chargeback=braintree_chargeback, text="Signed delivery.", actor=ops
    )
    services.evidence_save_draft(
        chargeback=braintree_chargeback, text="Signed delivery note attached.", actor=ops
    )
    stored = services.evidence_add_file(
        chargeback=braintree_chargeback,
        upload=SimpleUploadedFile("../../etc/receipt.pdf", PDF),
        actor=ops,
    )
    assert stored.original_name == "receipt.pdf" and ".." not in stored.file.name
    services.evidence_submit(chargeback=braintree_chargeback, actor=ops)
    assert [call[:2] for call in local_braintree.dispute_calls] == [
        ("dp_ev", "evidence"),
        ("dp_ev", "finalize"),
    ]
    assert "Signed delivery note attached." in local_braintree.dispute_calls[0][2]
    assert Chargeback.objects.get().status == "under_review"

    with pytest.raises(services.EvidenceAlreadySubmitted):
        services.evidence_save_draft(chargeback=braintree_chargeback, text="changed", actor=ops)
    with pytest.raises(services.EvidenceAlreadySubmitted):
        services.evidence_submit(chargeback=braintree_chargeback, actor=ops)
    assert ChargebackEvidence.objects.get().text == "Signed delivery note attached."
    assert len(local_braintree.dispute_calls) == 2


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("invoice.pdf", b"MZ\x90\x00 a renamed executable", "Only PDF, PNG and JPEG"),
        ("empty.pdf", b"", "empty"),
        ("big.pdf", b"%PDF-" + b"x" * (10 * 1024 * 1024), "the limit is"),
    ],
)
def test_bad_evidence_files_are_refused_and_nothing_is_stored(
    braintree_chargeback, ops, name, content, reason
) -> None:
    with pytest.raises(UploadRejected, match=reason):
        services.evidence_add_file(
            chargeback=braintree_chargeback, upload=SimpleUploadedFile(name, content), actor=ops
        )
    assert not EvidenceFile.objects.exists()
