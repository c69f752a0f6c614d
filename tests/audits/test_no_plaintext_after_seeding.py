"""Issue 13's scan: after the demo is loaded, no table (JSON columns and both audit trails
included) and no stored file holds any encrypted value in clear, while the people allowed to
see them still do, on the screens, in the API and in the document download."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from audits import roles
from kyc.demo.onboarding import TINY_PDF
from kyc.models import BeneficialOwner, KycDocument, ScreeningResult
from payments.models import ChargebackEvidence, Merchant, Payment, PayoutAccount
from tests.api.conftest import client_for, issue
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def seeded(settings, tmp_path, monkeypatch) -> None:
    from kyc.management.commands import seed_demo

    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "audits.crypto.storage.EncryptedFileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "private")},
        },
    }
    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", tmp_path / "demo_credentials.json")
    call_command("seed_demo", "--days", "30", stdout=io.StringIO())


def every_text_column() -> list[tuple[str, str]]:
    """(table, column) of every text, character and JSON column in the database."""
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        found = []
        for table in tables:
            for column in connection.introspection.get_table_description(cursor, table):
                kind = connection.introspection.get_field_type(column.type_code, column)
                if kind in ("CharField", "TextField", "JSONField", "EmailField"):
                    found.append((table, column.name))
        return found


def stored_texts(table: str, column: str) -> list[str]:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cast = "::text" if connection.vendor == "postgresql" else ""
        cursor.execute(f"SELECT {quote(column)}{cast} FROM {quote(table)}")
        return [str(value) for (value,) in cursor.fetchall() if value is not None]


EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def encrypted_values() -> tuple[set[str], set[str]]:
    """(emails, other values) of every encrypted field, read through the ORM (which decrypts)."""
    emails: set[str] = set()
    others: set[str] = set()
    for merchant in Merchant.objects.all():
        emails.add(merchant.contact_email)
        others |= {
            merchant.contact_phone,
            merchant.contact_name,
            merchant.tax_id,
            merchant.registration_number,
        }
    # Evidence drafts name the customer; each draft's text as a whole must not be in clear.
    others |= set(ChargebackEvidence.objects.values_list("text", flat=True))
    for account in PayoutAccount.objects.all():  # issue 15: bank accounts and their holders
        others |= {account.account_number, account.holder_name}
    for owner in BeneficialOwner.objects.all():
        # The nationality (two letters) is encrypted too, but too short to look for.
        others |= {owner.full_name, owner.date_of_birth, owner.residential_address}
    emails |= set(Payment.objects.values_list("customer_email", flat=True))
    # A screened name is encrypted; a company's own name is in the clear in its merchant row.
    companies = set(Merchant.objects.values_list("legal_name", flat=True)) | set(
        Merchant.objects.values_list("trading_name", flat=True)
    )
    others |= set(ScreeningResult.objects.values_list("screened_name", flat=True)) - companies
    emails.discard("")
    others.discard("")
    return emails, others


def test_no_encrypted_value_is_stored_in_clear_anywhere(seeded, settings) -> None:
    emails, others = encrypted_values()
    assert len(emails) >= 100 and len(others) >= 40
    # Each new kind of value is there to be looked for.
    assert Merchant.objects.exclude(tax_id="").count() == Merchant.objects.count()
    assert BeneficialOwner.objects.count() >= Merchant.objects.count()
    assert "Aleksandr Orlov" in set(ScreeningResult.objects.values_list("screened_name", flat=True))
    assert {"verified", "failed", "awaiting_confirmation"} <= set(
        PayoutAccount.objects.values_list("status", flat=True)
    )

    columns = every_text_column()
    assert ("payment_audits", "after_state") in columns
    leaks = []
    for table, column in columns:
        for text in stored_texts(table, column):
            # An email is looked up among the words that look like one (there are thousands).
            leaks += [(table, column, e) for e in EMAIL.findall(text) if e in emails]
            leaks += [(table, column, secret) for secret in others if secret in text]
    assert leaks == []

    files = [p for p in settings.PRIVATE_MEDIA_ROOT.rglob("*") if p.is_file()]
    assert len(files) == KycDocument.objects.count() > 0
    for path in files:
        content = path.read_bytes()
        assert TINY_PDF not in content and b"%PDF" not in content, path


def test_the_people_allowed_still_see_the_real_values(seeded) -> None:
    merchant = Merchant.objects.exclude(contact_email="").order_by("pk").first()
    officer = make_staff("reader", roles.COMPLIANCE_OFFICER)
    client = Client()
    client.force_login(officer)
    page = client.get(f"/kyc/merchants/{merchant.pk}/").content.decode()
    assert merchant.contact_email in page
    assert merchant.tax_id in page and merchant.registration_number in page
    owner = BeneficialOwner.objects.filter(merchant=merchant).first()
    assert owner is not None and owner.full_name in page
    api = client_for(issue(officer, ["merchants:read", "merchants:contact", "kyc:read"]))
    body = api.get(f"/api/v1/merchants/{merchant.pk}/").json()
    assert body["contact_email"] == merchant.contact_email
    assert body["tax_id"] == merchant.tax_id
    owners = api.get(f"/api/v1/merchants/{merchant.pk}/beneficial-owners/").json()
    assert owner.full_name in [o["full_name"] for o in owners]
    payment = Payment.objects.exclude(customer_email="").order_by("pk").first()
    found = client.get("/payments/", {"q": payment.customer_email.upper()}).content.decode()
    assert f'href="/payments/{payment.pk}/"' in found  # exact search by the blind index
    detail = client.get(f"/payments/{payment.pk}/").content.decode()
    assert payment.customer_email in detail
    document = KycDocument.objects.order_by("pk").first()
    download = client.get(f"/kyc/documents/{document.pk}/download")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == TINY_PDF
