"""Personal data masked for roles that do not need it (issue 13, point 4): merchant contact
persons are seen by KYC and compliance (and auditors, who read every record), masked for
payments operations, on every path: console list, change form and search, the KYC screens,
the API (only with the scope merchants:contact), and never in the logs."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from audits import roles
from audits.masking import mask_email, mask_name, mask_phone
from tests.api.conftest import client_for, issue
from tests.conftest import make_staff
from tests.kyc.factories import KycCaseFactory
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

EMAIL, PHONE, NAME = "ada.lovelace@analytical.example", "+44 20 7946 0123", "Ada Lovelace"


@pytest.fixture
def merchant():
    return MerchantFactory(contact_email=EMAIL, contact_phone=PHONE, contact_name=NAME)


def signed_in(username: str, role: str) -> Client:
    client = Client()
    client.force_login(make_staff(username, role))
    return client


def test_the_masks_keep_enough_to_recognise_and_nothing_to_contact() -> None:
    assert mask_email(EMAIL) == "a•••@analytical.example"
    assert mask_phone(PHONE) == "••• 23"
    assert mask_name(NAME) == "A••• L•••"
    assert mask_email("") == mask_phone("") == mask_name("") == ""


@pytest.mark.parametrize(
    "role,sees",
    [
        (roles.KYC_ANALYST, True),
        (roles.COMPLIANCE_OFFICER, True),
        (roles.AUDITOR, True),
        (roles.ADMINISTRATOR, True),
        (roles.PAYMENTS_OPERATIONS, False),
    ],
)
def test_the_console_shows_the_contact_only_to_roles_that_work_with_it(
    merchant, role, sees
) -> None:
    client = signed_in("person", role)
    listing = client.get("/admin/payments/merchant/").content.decode()
    change = client.get(f"/admin/payments/merchant/{merchant.pk}/change/").content.decode()
    for page in (listing, change):
        assert (EMAIL in page) is sees
        assert (mask_email(EMAIL) in page) is not sees
    assert (PHONE in change) is sees and (NAME in change) is sees


def test_a_console_search_by_email_is_no_oracle_for_a_role_that_may_not_see_it(merchant):
    ops = signed_in("ops", roles.PAYMENTS_OPERATIONS)
    found = ops.get("/admin/payments/merchant/", {"q": EMAIL}).content.decode()
    assert merchant.legal_name not in found
    officer = signed_in("officer", roles.COMPLIANCE_OFFICER)
    found = officer.get("/admin/payments/merchant/", {"q": EMAIL}).content.decode()
    assert merchant.legal_name in found


def test_the_kyc_screens_show_the_contact_to_kyc_staff(merchant) -> None:
    case = KycCaseFactory(merchant=merchant)
    analyst = signed_in("analyst", roles.KYC_ANALYST)
    for url in (f"/kyc/merchants/{merchant.pk}/", f"/kyc/cases/{case.pk}/"):
        page = analyst.get(url).content.decode()
        assert EMAIL in page and NAME in page, url


def test_the_api_returns_the_contact_only_with_the_scope_merchants_contact(merchant) -> None:
    officer = make_staff("officer", roles.COMPLIANCE_OFFICER)
    url = f"/api/v1/merchants/{merchant.pk}/"
    without = client_for(issue(officer, ["merchants:read"])).get(url).json()
    assert "contact_email" not in without and without["legal_name"] == merchant.legal_name
    with_scope = client_for(issue(officer, ["merchants:read", "merchants:contact"])).get(url)
    assert with_scope.json()["contact_email"] == EMAIL
    listing = client_for(issue(officer, ["merchants:read"])).get("/api/v1/merchants/").json()
    assert all("contact_email" not in row for row in listing["results"])


def test_a_token_with_the_scope_shows_nothing_its_owners_role_may_not_see(merchant) -> None:
    ops = make_staff("ops", roles.PAYMENTS_OPERATIONS)
    body = (
        client_for(issue(ops, ["merchants:read", "merchants:contact"]))
        .get(f"/api/v1/merchants/{merchant.pk}/")
        .json()
    )
    assert "contact_email" not in body and "contact_phone" not in body


def test_contact_data_never_reaches_the_logs(caplog) -> None:
    officer = make_staff("officer", roles.ADMINISTRATOR)
    caplog.set_level(logging.DEBUG)
    client = client_for(issue(officer, ["merchants:read", "merchants:write"]))
    created = client.post(
        "/api/v1/merchants/",
        {
            "legal_name": "Logless Ltd",
            "country": "GB",
            "contact_email": EMAIL,
            "contact_phone": PHONE,
            "contact_name": NAME,
        },
        format="json",
    )
    assert created.status_code == 201
    client.patch(
        f"/api/v1/merchants/{created.json()['id']}/", {"contact_email": "x"}, format="json"
    )
    for secret in (EMAIL, PHONE, NAME):
        assert secret not in caplog.text
