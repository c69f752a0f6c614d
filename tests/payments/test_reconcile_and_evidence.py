from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from payments.core.uploads import UploadRejected
from payments.models import Chargeback, ChargebackEvidence, EvidenceFile
from payments.services.disputes import (
    EvidenceAlreadySubmitted,
    evidence_add_file,
    evidence_save_draft,
    evidence_submit,
)
from tests.payments.factories import CapturedPaymentFactory, ChargebackFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def braintree_chargeback(local_braintree):
    payment = CapturedPaymentFactory(gateway="braintree", gateway_reference="bt_ev")
    return ChargebackFactory(payment=payment, gateway="braintree", gateway_reference="dp_ev")


PDF = b"%PDF-1.4 receipt\n%%EOF\n"


def test_evidence_is_a_draft_until_submitted_once(
    braintree_chargeback, ops, local_braintree
) -> None:
    evidence_save_draft(chargeback=braintree_chargeback, text="Signed delivery.", actor=ops)
    evidence_save_draft(
        chargeback=braintree_chargeback, text="Signed delivery note attached.", actor=ops
    )
    stored = evidence_add_file(
        chargeback=braintree_chargeback,
        upload=SimpleUploadedFile("../../etc/receipt.pdf", PDF),
        actor=ops,
    )
    assert stored.original_name == "receipt.pdf" and ".." not in stored.file.name
    evidence_submit(chargeback=braintree_chargeback, actor=ops)
    assert [call[:2] for call in local_braintree.dispute_calls] == [
        ("dp_ev", "evidence"),
        ("dp_ev", "finalize"),
    ]
    assert "Signed delivery note attached." in local_braintree.dispute_calls[0][2]
    assert Chargeback.objects.get().status == "under_review"

    with pytest.raises(EvidenceAlreadySubmitted):
        evidence_save_draft(chargeback=braintree_chargeback, text="changed", actor=ops)
    with pytest.raises(EvidenceAlreadySubmitted):
        evidence_submit(chargeback=braintree_chargeback, actor=ops)
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
        evidence_add_file(
            chargeback=braintree_chargeback, upload=SimpleUploadedFile(name, content), actor=ops
        )
    assert not EvidenceFile.objects.exists()
