"""Beneficial owners (KYB, issue 13 point 2): a person owning at least 25 % of a merchant, added
and edited through kyc.owners from the KYC merchant screen and the KYC API, read-only in the
console, personal data encrypted at rest and masked for roles without
payments.view_merchant_contact, screened with the merchant's names on submission, exported with
the merchant's subject export. Every refusal writes nothing."""

from __future__ import annotations

import datetime

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from audits import roles
from audits.crypto import envelope
from audits.masking import mask_name
from audits.models import PaymentAudit
from kyc import owners, services
from kyc.exceptions import NotAllowed
from kyc.models import BeneficialOwner, KycCase, ScreeningResult
from kyc.privacy import subject_data_export
from kyc.screening import names_to_screen
from payments.models import Merchant
from tests.api.conftest import client_for, issue
from tests.conftest import make_staff
from tests.kyc.factories import KycCaseFactory
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

NAME, ADDRESS = "Grete Hansen", "12 Fjord Road, Bergen"
FIELDS = {
    "full_name": NAME,
    "date_of_birth": "1971-03-14",
    "nationality": "NO",
    "residential_address": ADDRESS,
    "ownership_bp": 6_000,
}


@pytest.fixture
def merchant() -> Merchant:
    return MerchantFactory(legal_name="Fjord Ferries AS", contact_email="cfo@fjord.example")


@pytest.fixture
def analyst():
    return make_staff("analyst", roles.KYC_ANALYST)


def owner_of(merchant: Merchant, actor, **changes) -> BeneficialOwner:
    return owners.beneficial_owner_add(merchant=merchant, **{**FIELDS, **changes}, actor=actor)


def writes() -> tuple[int, int, int]:
    """Owners, their audit rows and change-log entries: a refusal changes none of them."""
    return (
        BeneficialOwner.objects.count(),
        PaymentAudit.objects.filter(object_type="kyc.beneficialowner").count(),
        LogEntry.objects.get_for_model(BeneficialOwner).count(),
    )


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_owner_is_stored_encrypted_audited_and_read_in_clear(merchant, analyst) -> None:
    owner = owner_of(merchant, analyst, nationality="no")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT full_name, date_of_birth, nationality, residential_address "
            "FROM kyc_beneficialowner WHERE id = %s",
            [owner.pk],
        )
        row = cursor.fetchone()
    assert all(envelope.is_envelope(value) for value in row)
    assert NAME not in " ".join(row) and ADDRESS not in " ".join(row)
    again = BeneficialOwner.objects.get(pk=owner.pk)
    assert (again.full_name, again.date_of_birth, again.nationality) == (NAME, "1971-03-14", "NO")
    assert again.ownership_percent == "60 %"
    entry = LogEntry.objects.get_for_object(owner).get()
    assert entry.actor == analyst and NAME not in str(entry.changes) and NAME not in str(entry)


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"full_name": "  "}, "full_name"),
        ({"date_of_birth": "14/03/1971"}, "date_of_birth"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"nationality": "Norway"}, "nationality"),
        ({"residential_address": ""}, "residential_address"),
        ({"ownership_bp": 2_499}, "ownership_bp"),
        ({"ownership_bp": 10_001}, "ownership_bp"),
        ({"ownership_bp": "a lot"}, "ownership_bp"),
        ({"held": "by magic"}, "held"),
    ],
)
def test_a_bad_field_is_refused_by_name_and_nothing_is_written(
    merchant, analyst, changes, field
) -> None:
    before = writes()
    with pytest.raises(owners.InvalidOwner) as refused:
        owner_of(merchant, analyst, **changes)
    assert field in refused.value.errors and refused.value.http_status == 400
    assert writes() == before


def test_the_owners_together_hold_at_most_100_percent(merchant, analyst) -> None:
    first = owner_of(merchant, analyst, ownership_bp=7_000)
    before = writes()
    with pytest.raises(owners.InvalidOwner, match="105 % together"):
        owner_of(merchant, analyst, full_name="Second Person", ownership_bp=3_500)
    assert writes() == before
    owner_of(merchant, analyst, full_name="Second Person", ownership_bp=3_000)
    with pytest.raises(owners.InvalidOwner):
        owners.beneficial_owner_update(owner=first, ownership_bp=7_500, actor=analyst)
    assert BeneficialOwner.objects.get(pk=first.pk).ownership_bp == 7_000


def test_staff_without_the_permission_may_not_add_or_edit(merchant, analyst) -> None:
    owner = owner_of(merchant, analyst)
    ops = make_staff("ops", roles.PAYMENTS_OPERATIONS)
    before = writes()
    with pytest.raises(NotAllowed):
        owner_of(merchant, ops, full_name="Other Person", ownership_bp=2_500)
    with pytest.raises(NotAllowed):
        owners.beneficial_owner_update(owner=owner, full_name="Changed", actor=ops)
    assert writes() == before
    assert BeneficialOwner.objects.get(pk=owner.pk).full_name == NAME


def test_an_edit_changes_only_the_fields_given(merchant, analyst) -> None:
    owner = owner_of(merchant, analyst)
    owners.beneficial_owner_update(owner=owner, residential_address="1 New Street", actor=analyst)
    again = BeneficialOwner.objects.get(pk=owner.pk)
    assert again.residential_address == "1 New Street" and again.full_name == NAME
    with pytest.raises(owners.InvalidOwner):
        owners.beneficial_owner_update(owner=owner, merchant_id=1, actor=analyst)


def test_the_owners_are_screened_with_the_merchants_names(
    merchant, analyst, django_capture_on_commit_callbacks
) -> None:
    owner_of(merchant, analyst, full_name="Aleksandr Orlov", ownership_bp=5_000)
    names = names_to_screen(merchant)
    assert names[0] == "Fjord Ferries AS" and names[-1] == "Aleksandr Orlov"
    assert "" not in names and len(names) == len(set(names))
    case = services.kyc_case_create(merchant=merchant, kind="kyb")
    with django_capture_on_commit_callbacks(execute=True):  # submission screens the case
        services.kyc_case_submit(case=case)
    hits = list(ScreeningResult.objects.filter(case=case))
    assert [h.screened_name for h in hits if h.matched_name == "Alexander Orlov"] == [
        "Aleksandr Orlov"
    ]
    assert KycCase.objects.get(pk=case.pk).screening_hit
    stored_factors = str(KycCase.objects.get(pk=case.pk).risk_factors)
    assert "Aleksandr Orlov" not in stored_factors  # kept in the clear: no person's name
    assert services.kyc_case_screen(case=case) == []  # again: nothing new


def test_the_merchant_export_holds_its_owners(merchant, analyst) -> None:
    owner_of(merchant, analyst)
    officer = make_staff("officer", roles.COMPLIANCE_OFFICER)
    document = subject_data_export(email="CFO@fjord.example", actor=officer)
    (exported,) = document["merchants"]
    (owner,) = exported["beneficial_owners"]
    assert (owner["full_name"], owner["residential_address"]) == (NAME, ADDRESS)
    assert owner["change_log"] and NAME in str(owner["change_log"])


@pytest.mark.parametrize(
    "role,sees",
    [
        (roles.KYC_ANALYST, True),
        (roles.COMPLIANCE_OFFICER, True),
        (roles.AUDITOR, True),
        (roles.PAYMENTS_OPERATIONS, False),
    ],
)
def test_the_screens_mask_the_owners_for_roles_without_the_permission(
    merchant, analyst, role, sees
) -> None:
    owner = owner_of(merchant, analyst)
    client = signed_in(make_staff("person", role))
    case = KycCaseFactory(merchant=merchant)
    pages = [client.get(f"/kyc/merchants/{merchant.pk}/")]
    pages.append(client.get(f"/admin/kyc/beneficialowner/{owner.pk}/change/"))
    by_name_only = [client.get("/admin/kyc/beneficialowner/"), client.get(f"/kyc/cases/{case.pk}/")]
    shown = [p.content.decode() for p in pages if p.status_code == 200]
    assert shown
    for page in shown:
        assert (NAME in page) is sees and (ADDRESS in page) is sees
        assert ("1971-03-14" in page) is sees
        assert (mask_name(NAME) in page) is not sees
    for listing in by_name_only:
        if listing.status_code == 200:
            assert (NAME in listing.content.decode()) is sees
            assert (mask_name(NAME) in listing.content.decode()) is not sees


def test_the_console_is_view_only(merchant, analyst) -> None:
    owner = owner_of(merchant, analyst)
    admin = signed_in(make_staff("admin", roles.ADMINISTRATOR))
    assert admin.get("/admin/kyc/beneficialowner/add/").status_code == 403
    page = admin.get(f"/admin/kyc/beneficialowner/{owner.pk}/change/")
    assert page.status_code == 200 and b'name="full_name"' not in page.content
    before = writes()
    admin.post(f"/admin/kyc/beneficialowner/{owner.pk}/change/", {"full_name": "Hacked"})
    assert writes() == before and BeneficialOwner.objects.get(pk=owner.pk).full_name == NAME


def test_the_merchant_screen_adds_and_edits_an_owner(merchant, analyst) -> None:
    client = signed_in(analyst)
    assert client.get(f"/kyc/merchants/{merchant.pk}/owners/add").status_code == 200
    form = {**FIELDS, "held": "direct"}
    added = client.post(f"/kyc/merchants/{merchant.pk}/owners/add", form)
    assert added.status_code == 302
    owner = BeneficialOwner.objects.get(merchant=merchant)
    assert client.get(f"/kyc/owners/{owner.pk}/").content.decode().count(NAME) >= 1
    edited = client.post(f"/kyc/owners/{owner.pk}/", {**form, "ownership_bp": 10_000})
    assert edited.status_code == 302
    assert BeneficialOwner.objects.get(pk=owner.pk).ownership_bp == 10_000


def test_the_merchant_screen_refuses_a_bad_owner_next_to_its_field(merchant, analyst) -> None:
    owner_of(merchant, analyst, ownership_bp=8_000)
    client = signed_in(analyst)
    before = writes()
    refused = client.post(
        f"/kyc/merchants/{merchant.pk}/owners/add",
        {**FIELDS, "full_name": "Third Person", "ownership_bp": 3_000, "held": "direct"},
    )
    assert refused.status_code == 400
    assert "together" in refused.content.decode()
    bad_date = client.post(
        f"/kyc/merchants/{merchant.pk}/owners/add",
        {**FIELDS, "date_of_birth": "yesterday", "held": "direct"},
    )
    assert bad_date.status_code == 400
    assert writes() == before
    ops = signed_in(make_staff("ops", roles.PAYMENTS_OPERATIONS))
    assert ops.post(f"/kyc/merchants/{merchant.pk}/owners/add", FIELDS).status_code == 403
    assert writes() == before


def test_the_api_adds_reads_and_edits_owners_and_shows_them_only_with_the_scope(
    merchant, analyst
) -> None:
    api = client_for(issue(analyst, ["kyc:read", "kyc:write", "merchants:contact"]))
    created = api.post(f"/api/v1/merchants/{merchant.pk}/beneficial-owners/", FIELDS, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["full_name"] == NAME and body["ownership_bp"] == 6_000
    patched = api.patch(
        f"/api/v1/beneficial-owners/{body['id']}/", {"ownership_bp": 5_000}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["ownership_bp"] == 5_000

    plain = client_for(issue(analyst, ["kyc:read"]))
    (row,) = plain.get(f"/api/v1/merchants/{merchant.pk}/beneficial-owners/").json()
    assert row["ownership_bp"] == 5_000
    assert not {"full_name", "date_of_birth", "nationality", "residential_address"} & set(row)


def test_the_api_refuses_bad_owners_and_writes_nothing(merchant, analyst) -> None:
    api = client_for(issue(analyst, ["kyc:read", "kyc:write"]))
    url = f"/api/v1/merchants/{merchant.pk}/beneficial-owners/"
    before = writes()
    for bad in (
        {**FIELDS, "ownership_bp": 1_000},
        {**FIELDS, "date_of_birth": "not a date"},
        {**FIELDS, "nationality": "NOR"},
        {**FIELDS, "merchant": 99},
        {k: v for k, v in FIELDS.items() if k != "full_name"},
    ):
        answer = api.post(url, bad, format="json")
        assert answer.status_code == 400, (bad, answer.content)
    future = {**FIELDS, "date_of_birth": str(datetime.date.today() + datetime.timedelta(days=2))}
    assert api.post(url, future, format="json").status_code == 400
    assert (
        api.post("/api/v1/merchants/999999/beneficial-owners/", FIELDS, format="json").status_code
        == 404
    )
    ops = make_staff("ops", roles.PAYMENTS_OPERATIONS)
    assert client_for(issue(ops, ["kyc:read"])).post(url, FIELDS, format="json").status_code == 403
    assert writes() == before


def test_a_merchant_token_sees_and_adds_only_its_own_owners(merchant, analyst) -> None:
    # A merchant's integration account: no role, signs in nowhere.
    integration_user = User.objects.create_user("integration", email="integration@example.com")
    other = MerchantFactory()
    owner_of(other, analyst)
    token = issue(integration_user, ["kyc:read", "kyc:write"], merchant=merchant)
    api = client_for(token)
    assert api.get(f"/api/v1/merchants/{other.pk}/beneficial-owners/").status_code == 404
    before = writes()
    assert (
        api.post(f"/api/v1/merchants/{other.pk}/beneficial-owners/", FIELDS, format="json")
    ).status_code == 404
    assert writes() == before
    created = api.post(f"/api/v1/merchants/{merchant.pk}/beneficial-owners/", FIELDS, format="json")
    assert created.status_code == 201
    assert BeneficialOwner.objects.filter(merchant=merchant).count() == 1


def test_the_merchant_and_case_pages_ask_as_many_queries_for_three_owners_as_for_one(
    merchant, analyst
) -> None:
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    case = KycCaseFactory(merchant=merchant)
    client = signed_in(analyst)
    owner_of(merchant, analyst, ownership_bp=3_000)

    def queries(url: str) -> int:
        with CaptureQueriesContext(db) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    urls = (f"/kyc/merchants/{merchant.pk}/", f"/kyc/cases/{case.pk}/")
    for url in urls:
        queries(url)  # the session's first requests write to it
    one = [queries(url) for url in urls]
    for n in (2, 3):
        owner_of(merchant, analyst, full_name=f"Owner {n}", ownership_bp=3_000)
    assert [queries(url) for url in urls] == one
