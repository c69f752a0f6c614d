"""Issue 13, point 2: a merchant's tax id and registration number, a payment's customer email
and a screened name are encrypted at rest; the tax id and the customer email are found by exact
search through their blind index; the identifiers are masked for roles without
payments.view_merchant_contact (console, KYC screen, search) and left out of the API without
the scope merchants:contact; rotation and the data migrations reach them."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from audits import roles
from audits.crypto import envelope
from audits.crypto.legacy import seal_plaintext_values
from audits.masking import mask_identifier
from kyc.models import ScreeningResult
from payments.models import Merchant, Payment
from payments.selectors import merchant_filter_tax_id, payment_search
from tests.api.conftest import client_for, issue
from tests.conftest import make_staff
from tests.kyc.factories import ScreeningResultFactory
from tests.payments.factories import MerchantFactory, PaymentFactory

pytestmark = pytest.mark.django_db

TAX_ID, REGISTRATION = "GB123456789", "HRB 98765"


@pytest.fixture
def merchant():
    return MerchantFactory(tax_id=TAX_ID, registration_number=REGISTRATION)


def stored(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE id = %s', [pk])
        return str(cursor.fetchone()[0])


def signed_in(username: str, role: str) -> Client:
    client = Client()
    client.force_login(make_staff(username, role))
    return client


def test_the_identifiers_are_stored_as_envelopes_and_read_in_clear(merchant) -> None:
    for column, value in (("tax_id", TAX_ID), ("registration_number", REGISTRATION)):
        text = stored("payments_merchant", column, merchant.pk)
        assert envelope.is_envelope(text) and value not in text
    again = Merchant.objects.get(pk=merchant.pk)
    assert (again.tax_id, again.registration_number) == (TAX_ID, REGISTRATION)
    assert stored("payments_merchant", "tax_id_index", merchant.pk) != ""


def test_a_customer_email_and_a_screened_name_are_stored_as_envelopes() -> None:
    payment = PaymentFactory(customer_email="jane.roe@example.com")
    text = stored("payments_payment", "customer_email", payment.pk)
    assert envelope.is_envelope(text) and "jane.roe" not in text
    assert Payment.objects.get(pk=payment.pk).customer_email == "jane.roe@example.com"
    hit = ScreeningResultFactory(screened_name="Jane Roe")
    assert "Jane Roe" not in stored("kyc_screeningresult", "screened_name", hit.pk)
    assert ScreeningResult.objects.get(pk=hit.pk).screened_name == "Jane Roe"
    assert "Jane Roe" not in str(hit)  # the audit log's object text


def test_the_tax_id_is_found_by_its_blind_index_in_any_case(merchant) -> None:
    MerchantFactory(tax_id="GB000000000")
    found = merchant_filter_tax_id(Merchant.objects.all(), " gb123456789 ")
    assert list(found) == [merchant]
    assert not merchant_filter_tax_id(Merchant.objects.all(), "GB12345678").exists()
    assert not merchant_filter_tax_id(Merchant.objects.all(), "").exists()


def test_the_operations_list_finds_a_payment_by_its_customer_email() -> None:
    wanted = PaymentFactory(customer_email="Jo.Bloggs@example.com")
    PaymentFactory(customer_email="someone@example.com")
    assert list(payment_search(q="jo.bloggs@EXAMPLE.com")) == [wanted]
    assert list(payment_search(q="bloggs@example.com")) == []  # exact match only


def test_the_console_finds_a_payment_by_customer_email(admin_client) -> None:
    wanted = PaymentFactory(customer_email="console@example.com", gateway_reference="pi_wanted")
    PaymentFactory(gateway_reference="pi_other")
    page = admin_client.get("/admin/payments/payment/", {"q": "CONSOLE@example.com"})
    text = page.content.decode()
    assert "pi_wanted" in text and "pi_other" not in text
    assert wanted.customer_email in text


@pytest.mark.parametrize(
    "role,sees",
    [
        (roles.KYC_ANALYST, True),
        (roles.COMPLIANCE_OFFICER, True),
        (roles.AUDITOR, True),
        (roles.PAYMENTS_OPERATIONS, False),
    ],
)
def test_the_console_and_kyc_screen_mask_the_identifiers_for_other_roles(
    merchant, role, sees
) -> None:
    client = signed_in("person", role)
    change = client.get(f"/admin/payments/merchant/{merchant.pk}/change/").content.decode()
    assert (TAX_ID in change) is sees and (REGISTRATION in change) is sees
    assert (mask_identifier(TAX_ID) in change) is not sees
    screen = client.get(f"/kyc/merchants/{merchant.pk}/")
    if screen.status_code == 200:
        page = screen.content.decode()
        assert (TAX_ID in page) is sees and (mask_identifier(TAX_ID) in page) is not sees


def test_a_console_search_by_tax_id_only_for_roles_that_may_see_it(merchant) -> None:
    MerchantFactory(legal_name="Other Trading Ltd")
    officer = signed_in("officer", roles.COMPLIANCE_OFFICER)
    found = officer.get("/admin/payments/merchant/", {"q": "gb123456789"}).content.decode()
    assert merchant.legal_name in found and "Other Trading Ltd" not in found
    ops = signed_in("ops", roles.PAYMENTS_OPERATIONS)
    found = ops.get("/admin/payments/merchant/", {"q": TAX_ID}).content.decode()
    assert merchant.legal_name not in found


def test_the_api_gives_the_identifiers_only_with_the_scope_merchants_contact(merchant) -> None:
    officer = make_staff("officer", roles.COMPLIANCE_OFFICER)
    url = f"/api/v1/merchants/{merchant.pk}/"
    without = client_for(issue(officer, ["merchants:read"])).get(url).json()
    assert "tax_id" not in without and "registration_number" not in without
    body = client_for(issue(officer, ["merchants:read", "merchants:contact"])).get(url).json()
    assert (body["tax_id"], body["registration_number"]) == (TAX_ID, REGISTRATION)


def test_the_api_sets_the_identifiers_and_refuses_a_bad_one_writing_nothing() -> None:
    admin = make_staff("admin", roles.ADMINISTRATOR)
    client = client_for(issue(admin, ["merchants:read", "merchants:write", "merchants:contact"]))
    created = client.post(
        "/api/v1/merchants/",
        {
            "legal_name": "Taxed Ltd",
            "country": "GB",
            "contact_email": "a@taxed.example",
            "tax_id": "GB555",
            "registration_number": "R-1",
        },
        format="json",
    )
    assert created.status_code == 201 and created.json()["tax_id"] == "GB555"
    pk = created.json()["id"]
    too_long = client.patch(f"/api/v1/merchants/{pk}/", {"tax_id": "X" * 33}, format="json")
    assert too_long.status_code == 400
    assert Merchant.objects.get(pk=pk).tax_id == "GB555"
    changed = client.patch(f"/api/v1/merchants/{pk}/", {"tax_id": "GB777"}, format="json")
    assert changed.status_code == 200
    assert list(merchant_filter_tax_id(Merchant.objects.all(), "GB777")) == [
        Merchant.objects.get(pk=pk)
    ]


def test_plaintext_left_from_before_is_encrypted_by_the_migration_helper_and_rotation() -> None:
    payment = PaymentFactory(customer_email="")
    hit = ScreeningResultFactory()
    with connection.cursor() as cursor:  # as the rows stood before migration 0017 / kyc 0006
        cursor.execute(
            "UPDATE payments_payment SET customer_email = %s, customer_email_index = '' "
            "WHERE id = %s",
            ["old@example.com", payment.pk],
        )
        cursor.execute(
            "UPDATE kyc_screeningresult SET screened_name = %s WHERE id = %s",
            ["Old Name", hit.pk],
        )
    assert seal_plaintext_values(Payment) == 1
    assert seal_plaintext_values(ScreeningResult) == 1
    assert envelope.is_envelope(stored("payments_payment", "customer_email", payment.pk))
    assert list(payment_search(q="old@example.com")) == [Payment.objects.get(pk=payment.pk)]
    assert ScreeningResult.objects.get(pk=hit.pk).screened_name == "Old Name"

    out = io.StringIO()
    call_command("key_status", stdout=out)
    for label in (
        "payments.payment.customer_email",
        "payments.merchant.tax_id",
        "payments.merchant.registration_number",
        "kyc.screeningresult.screened_name",
        "kyc.beneficialowner.full_name",
    ):
        assert label in out.getvalue()


def test_rotate_keys_moves_the_new_fields_and_search_keeps_working(settings, merchant) -> None:
    import base64
    import os

    from audits.crypto.keys import provider

    payment = PaymentFactory(customer_email="rotate@example.com")
    hit = ScreeningResultFactory(screened_name="Rota Person")
    settings.FIELD_ENCRYPTION_KEYS = [
        base64.urlsafe_b64encode(os.urandom(32)).decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    newest = provider().key_ids()[0]
    call_command("rotate_keys", stdout=io.StringIO())
    for table, column, pk in (
        ("payments_merchant", "tax_id", merchant.pk),
        ("payments_merchant", "registration_number", merchant.pk),
        ("payments_payment", "customer_email", payment.pk),
        ("kyc_screeningresult", "screened_name", hit.pk),
    ):
        assert envelope.key_id_of(stored(table, column, pk)) == newest, column
    assert list(merchant_filter_tax_id(Merchant.objects.all(), TAX_ID)) == [merchant]
    assert list(payment_search(q="rotate@example.com")) == [Payment.objects.get(pk=payment.pk)]
    assert ScreeningResult.objects.get(pk=hit.pk).screened_name == "Rota Person"
