"""Issue 13's scan: after the demo is loaded, no table (JSON columns and both audit trails
included) and no stored file holds any encrypted value in clear, while the people allowed to
see them still do, on the screens, in the API and in the document download."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from audits import roles
from kyc.demo.onboarding import TINY_PDF
from kyc.models import KycDocument
from payments.models import Merchant, PayoutAccount
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


def test_no_encrypted_value_is_stored_in_clear_anywhere(seeded, settings) -> None:
    secrets = set()
    for merchant in Merchant.objects.all():  # the ORM decrypts
        secrets |= {merchant.contact_email, merchant.contact_phone, merchant.contact_name}
    for account in PayoutAccount.objects.all():  # issue 15: bank accounts and their holders
        secrets |= {account.account_number, account.holder_name}
    secrets.discard("")
    assert len(secrets) >= 10
    assert {"verified", "failed", "awaiting_confirmation"} <= set(
        PayoutAccount.objects.values_list("status", flat=True)
    )

    columns = every_text_column()
    assert ("payment_audits", "after_state") in columns
    leaks = [
        (table, column, secret)
        for table, column in columns
        for text in stored_texts(table, column)
        for secret in secrets
        if secret in text
    ]
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
    body = (
        client_for(issue(officer, ["merchants:read", "merchants:contact"]))
        .get(f"/api/v1/merchants/{merchant.pk}/")
        .json()
    )
    assert body["contact_email"] == merchant.contact_email
    document = KycDocument.objects.order_by("pk").first()
    download = client.get(f"/kyc/documents/{document.pk}/download")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == TINY_PDF
