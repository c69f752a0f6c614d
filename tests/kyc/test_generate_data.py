"""generate_data: rows at a chosen size, with progress, and audit rows that verify."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from audits.models import AuditChainHead, PaymentAudit
from audits.verify import verify_database
from kyc.models import KycCase
from payments.models import Merchant, Payment
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def _generate(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("generate_data", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_it_generates_the_sizes_asked_with_progress_and_chained_audit_rows() -> None:
    PaymentFactory()  # audited through the application first: generated rows chain after it
    audits_before = PaymentAudit.objects.count()
    assert audits_before > 0
    output = _generate(
        "--merchants",
        "20",
        "--payments",
        "2500",
        "--kyc-cases",
        "700",
        "--audit-rows",
        "3000",
        "--batch-size",
        "1000",
    )
    assert Merchant.objects.count() == 21 and Payment.objects.count() == 2501
    assert KycCase.objects.count() == 700
    assert PaymentAudit.objects.count() == audits_before + 3000
    assert "audit rows  [##############################]       3,000/3,000" in output
    assert "payments    [" in output and "Generated 20 merchants, 2,500 payments" in output
    assert set(KycCase.objects.values_list("status", flat=True)) >= {"approved", "submitted"}
    report = verify_database()
    assert report.ok, [str(p) for p in report.problems]
    assert report.rows_checked == audits_before + 3000
    # The application's next append chains after the generated rows.
    PaymentFactory()
    assert verify_database().ok
    assert sum(h.seq for h in AuditChainHead.objects.all()) == PaymentAudit.objects.count()


@pytest.mark.django_db(transaction=True)  # the triggers are lifted outside a test transaction
def test_a_forged_generated_row_is_caught() -> None:
    _generate("--merchants", "2", "--payments", "50", "--kyc-cases", "0", "--audit-rows", "200")
    from django.db import connection

    row = PaymentAudit.objects.order_by("chain", "seq")[50]
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE payment_audits DISABLE TRIGGER USER")
        cursor.execute(
            'UPDATE payment_audits SET after_state = \'{"status": "forged"}\' WHERE id = %s',
            [row.id],
        )
        cursor.execute("ALTER TABLE payment_audits ENABLE TRIGGER USER")
    report = verify_database()
    assert not report.ok and "altered" in str(report.problems[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--payments", "-1"], "Sizes are 0 or more"),
        (["--merchants", "0", "--payments", "10"], "at least one merchant"),
        (["--payments", "0", "--kyc-cases", "0", "--audit-rows", "5"], "Audit rows are about"),
        (["--batch-size", "0"], "batch size at least 1"),
    ],
)
def test_bad_sizes_are_refused_and_nothing_is_written(args, message) -> None:
    counts = [m.objects.count() for m in (Merchant, Payment, KycCase, PaymentAudit)]
    with pytest.raises(CommandError, match=message):
        _generate(*args)
    assert [m.objects.count() for m in (Merchant, Payment, KycCase, PaymentAudit)] == counts
