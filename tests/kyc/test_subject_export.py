"""Data-subject access (GDPR art. 15): everything held about a merchant's contact person, by
email through the blind index, from the command and the merchant screen; recorded in the
security trail; refused with a clear error, writing nothing, for an unknown email or a role
that may not see contact data."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from audits import roles
from audits.models import PaymentAudit
from payments.services.merchants import merchant_create, merchant_update_contact
from tests.conftest import make_staff
from tests.helpers import row_counts
from tests.kyc.factories import CaseNoteFactory, KycCaseFactory

pytestmark = pytest.mark.django_db

EMAIL = "Ana.Pereira@bakery.example"


@pytest.fixture
def merchant():
    merchant = merchant_create(
        legal_name="Pereira Bakery Lda",
        country="PT",
        contact_email=EMAIL,
        contact_name="Ana Pereira",
        contact_phone="+351 21 000 0000",
    )
    merchant = merchant_update_contact(merchant=merchant, contact_phone="+351 21 111 1111")
    case = KycCaseFactory(merchant=merchant)
    CaseNoteFactory(case=case, text="Ana confirmed the address by phone.")
    return merchant


def exports() -> int:
    return PaymentAudit.objects.filter(action_type="security.privacy.subject_export").count()


def test_the_command_gathers_everything_held_about_the_person_in_clear(merchant) -> None:
    out = io.StringIO()
    call_command("export_subject_data", "--email", EMAIL.lower(), stdout=out, stderr=io.StringIO())
    document = json.loads(out.getvalue())
    [held] = document["merchants"]
    assert held["merchant"]["contact_name"] == "Ana Pereira"
    assert held["merchant"]["contact_phone"] == "+351 21 111 1111"
    notes = [n["text"] for case in held["kyc_cases"] for n in case["notes"]]
    assert "Ana confirmed the address by phone." in notes
    # Both trails, with the encrypted values shown in clear, the old phone included.
    phones = [row["after"].get("contact_phone") for row in held["audit_trail"] if row["after"]]
    assert "+351 21 000 0000" in phones and "+351 21 111 1111" in phones
    assert held["change_log"]
    assert exports() == 1


def test_an_unknown_email_is_a_clear_error_and_writes_nothing(merchant) -> None:
    before = row_counts()
    with pytest.raises(CommandError, match="No merchant has a contact person"):
        call_command("export_subject_data", "--email", "nobody@example.com", stderr=io.StringIO())
    assert row_counts() == before


def test_an_officer_exports_from_the_merchant_screen(merchant) -> None:
    client = Client()
    client.force_login(make_staff("officer", roles.COMPLIANCE_OFFICER))
    page = client.get(f"/kyc/merchants/{merchant.pk}/").content.decode()
    assert "Export the contact person&#x27;s data" in page or "Export the contact person" in page
    response = client.post(f"/kyc/merchants/{merchant.pk}/subject-export")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Cache-Control"] == "no-store"
    assert json.loads(response.content)["merchants"][0]["merchant"]["contact_email"] == EMAIL
    assert exports() == 1


@pytest.mark.parametrize("role", [roles.KYC_ANALYST, roles.PAYMENTS_OPERATIONS, roles.AUDITOR])
def test_other_roles_cannot_export_and_nothing_is_written(merchant, role) -> None:
    client = Client()
    client.force_login(make_staff("someone", role))
    assert "subject-export" not in client.get(f"/kyc/merchants/{merchant.pk}/").content.decode()
    before = row_counts()
    assert client.post(f"/kyc/merchants/{merchant.pk}/subject-export").status_code == 403
    assert row_counts() == before
