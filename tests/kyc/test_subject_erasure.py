"""Erasure (GDPR art. 17) by crypto-shredding: destroying a contact person's own data key makes
every copy of their data unreadable (the merchant row, both audit trails, the screens, the API
and the access export), the hash chains still verify, and legal holds refuse it with their
reasons while changing nothing. From the command and the merchant screen."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from audits import roles
from audits.crypto import envelope, subjects
from audits.crypto.errors import SubjectErased
from audits.crypto.fields import ERASED
from audits.crypto.reveal import reveal_changes, reveal_state
from audits.models import PaymentAudit, SubjectKey
from kyc import privacy
from kyc.models import KycCase
from payments.models import Chargeback, Merchant
from payments.services.merchants import merchant_create, merchant_update_contact
from tests.api.conftest import client_for, issue
from tests.audits.test_no_plaintext_after_seeding import every_text_column, stored_texts
from tests.conftest import make_staff
from tests.helpers import row_counts
from tests.kyc.factories import KycCaseFactory
from tests.payments.factories import ChargebackFactory, PaymentFactory

pytestmark = pytest.mark.django_db

EMAIL = "Ana.Pereira@bakery.example"
NAME = "Ana Pereira"
PHONE = "+351 21 000 0000"
NO_RETENTION = {"kyc.kyccase": 0, "payments.payment": 0, "payments.chargeback": 0}


@pytest.fixture
def no_retention(settings) -> None:
    settings.DATA_RETENTION_DAYS = NO_RETENTION


def closed_merchant(email: str = EMAIL, name: str = NAME) -> Merchant:
    """A merchant the relationship with has ended: no hold but the retention periods."""
    merchant = merchant_create(
        legal_name=f"Bakery {email[:3]} Lda", country="PT", contact_email=email, contact_name=name
    )
    merchant = merchant_update_contact(merchant=merchant, contact_phone=PHONE)
    KycCaseFactory(
        merchant=merchant,
        status=KycCase.Status.REJECTED,
        decision="rejected",
        decision_reason="documents not provided",
        decided_by=User.objects.filter(username="decider").first()
        or make_staff("decider", roles.COMPLIANCE_OFFICER),
        decided_at=timezone.now(),
    )
    merchant.status = Merchant.Status.CLOSED
    merchant.save()
    return merchant


def envelopes_of(key: SubjectKey) -> list[str]:
    """Every envelope under this person's key, in any text or JSON column of any table."""
    pattern = re.compile(
        re.escape(f"{envelope.PREFIX}{envelope.ALGORITHM}:{subjects.key_id_for(key.pk)}:")
        + r"[A-Za-z0-9_-]+:[A-Za-z0-9_-]+"
    )
    return [
        found
        for table, column in every_text_column()
        for text in stored_texts(table, column)
        for found in pattern.findall(text)
    ]


def merchant_rows(merchant: Merchant) -> list[PaymentAudit]:
    return list(
        PaymentAudit.objects.filter(object_type="payments.merchant", object_id=str(merchant.pk))
    )


def test_erasure_makes_every_copy_unreadable_and_the_chains_still_verify(no_retention) -> None:
    merchant = closed_merchant()
    other = closed_merchant(email="someone.else@example.com", name="Rui Costa")
    key = SubjectKey.objects.get(pk=merchant.contact_subject_id)
    copies = envelopes_of(key)
    assert len(copies) >= 6  # the live row and the audit rows of both trails
    hashes = sorted(PaymentAudit.objects.values_list("row_hash", flat=True))

    erasure = privacy.subject_erase(email=EMAIL.lower(), actor=None, reason="DSR-2026-0042")

    assert erasure.keys_destroyed == 1
    key.refresh_from_db()
    assert bytes(key.wrapped_key) == b"" and key.erased_at and key.erasure_reason == "DSR-2026-0042"
    for text in envelopes_of(key):  # every copy is still there, and none opens any more
        wrapped = envelope.Envelope.loads(text).wrapped_key
        with pytest.raises(SubjectErased):
            subjects.unwrap(key.pk, wrapped)
    erased = Merchant.objects.get(pk=merchant.pk)
    assert (erased.contact_name, erased.contact_email, erased.contact_phone) == (ERASED,) * 3
    assert erased.contact_email_index == ""
    for row in merchant_rows(merchant):
        for state in (row.before_state, row.after_state):
            revealed = reveal_state(row.object_type, state) or {}
            assert not {NAME, EMAIL, PHONE} & {str(v) for v in revealed.values()}
    from auditlog.models import LogEntry

    for entry in LogEntry.objects.get_for_object(merchant):
        text = str(reveal_changes("payments.merchant", entry.changes_dict))
        assert NAME not in text and EMAIL not in text and PHONE not in text
    # Nothing of the trail was rewritten: the old rows and hashes are all there, and verify.
    assert set(hashes) <= set(PaymentAudit.objects.values_list("row_hash", flat=True))
    call_command("verify_audit_chain", stdout=io.StringIO())
    # The other person is untouched; the erased one is not found any more.
    assert Merchant.objects.get(pk=other.pk).contact_name == "Rui Costa"
    with pytest.raises(privacy.SubjectNotFound):
        privacy.subject_data_export(email=EMAIL, actor=None)
    [recorded] = PaymentAudit.objects.filter(action_type="security.privacy.subject_erasure")
    assert recorded.object_id == str(merchant.pk)
    assert recorded.after_state["request"] == "DSR-2026-0042"
    assert EMAIL not in str(recorded.after_state)


def test_screens_and_the_api_show_the_erasure(no_retention) -> None:
    merchant = closed_merchant()
    privacy.subject_erase(email=EMAIL, actor=None, reason="DSR-1")
    officer = Client()
    officer.force_login(make_staff("officer", roles.COMPLIANCE_OFFICER))
    page = officer.get(f"/kyc/merchants/{merchant.pk}/").content.decode()
    assert NAME not in page and EMAIL not in page and ERASED in page
    assert "subject-erase" not in page  # nothing left to erase
    admin = Client()
    admin.force_login(make_staff("admin", roles.ADMINISTRATOR))
    change = admin.get(f"/admin/payments/merchant/{merchant.pk}/change/").content.decode()
    assert NAME not in change and EMAIL not in change
    token = issue(
        make_staff("officer2", roles.COMPLIANCE_OFFICER), ["merchants:read", "merchants:contact"]
    )
    body = client_for(token).get(f"/api/v1/merchants/{merchant.pk}/").json()
    assert body["contact_email"] == ERASED and body["contact_phone"] == ERASED


def test_a_former_contact_is_erased_without_touching_the_current_one(no_retention) -> None:
    merchant = closed_merchant()
    merchant = merchant_update_contact(
        merchant=merchant, contact_email="new.contact@bakery.example", contact_name="Rui Costa"
    )
    assert merchant.contact_phone == PHONE  # carried over, under the new person's key
    old, new = SubjectKey.objects.filter(object_id=str(merchant.pk)).order_by("created_at")
    assert merchant.contact_subject_id == new.pk

    privacy.subject_erase(email=EMAIL, actor=None, reason="DSR-2")

    assert SubjectKey.objects.get(pk=old.pk).erased_at is not None
    assert SubjectKey.objects.get(pk=new.pk).erased_at is None
    current = Merchant.objects.get(pk=merchant.pk)
    assert current.contact_email == "new.contact@bakery.example"
    assert current.contact_name == "Rui Costa"
    first = min(merchant_rows(merchant), key=lambda row: row.created_at)
    assert reveal_state(first.object_type, first.after_state)["contact_email"] == ERASED


@pytest.mark.parametrize(
    "hold, expected",
    [
        ("open_case", "has an open KYC case"),
        ("open_dispute", "has 1 open dispute"),
        ("retention", "(payments.payment retention)"),
        ("active", "is active and this is its contact person"),
    ],
)
def test_a_legal_hold_refuses_with_its_reason_and_changes_nothing(settings, hold, expected) -> None:
    settings.DATA_RETENTION_DAYS = {
        **NO_RETENTION,
        "payments.payment": 3650 if hold == "retention" else 0,
    }
    merchant = closed_merchant()
    if hold == "open_case":
        KycCaseFactory(merchant=merchant, status=KycCase.Status.IN_REVIEW)
    if hold == "open_dispute":
        ChargebackFactory(
            payment=PaymentFactory(merchant=merchant), status=Chargeback.Status.NEEDS_RESPONSE
        )
    if hold == "retention":
        PaymentFactory(merchant=merchant)
    if hold == "active":  # as if the relationship were still on (closed is final in the app)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE payments_merchant SET status = 'active' WHERE id = %s", [merchant.pk]
            )
    before = row_counts()
    key_before = SubjectKey.objects.values().get(pk=merchant.contact_subject_id)

    with pytest.raises(privacy.ErasureRefused) as refused:
        privacy.subject_erase(email=EMAIL, actor=None, reason="DSR-3")

    assert expected in str(refused.value)
    assert SubjectKey.objects.values().get(pk=merchant.contact_subject_id) == key_before
    assert Merchant.objects.get(pk=merchant.pk).contact_email == EMAIL
    # Only the refusal itself is recorded, in the security trail, with the holds.
    after = row_counts()
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "audits.PaymentAudit": 1
    }
    [refusal] = PaymentAudit.objects.filter(action_type="security.privacy.erasure_refused")
    assert expected in " ".join(refusal.after_state["holds"])


def test_the_command_erases_and_explains_a_refusal(settings) -> None:
    settings.DATA_RETENTION_DAYS = {**NO_RETENTION, "kyc.kyccase": 3650}
    closed_merchant()
    with pytest.raises(CommandError, match=r"(?s)Erasure refused.*kyc.kyccase retention"):
        call_command(
            "erase_subject_data", "--email", EMAIL, "--reason", "DSR-4", stderr=io.StringIO()
        )
    settings.DATA_RETENTION_DAYS = NO_RETENTION
    out = io.StringIO()
    call_command(
        "erase_subject_data",
        "--email",
        EMAIL,
        "--reason",
        "DSR-4",
        stdout=out,
        stderr=io.StringIO(),
    )
    assert "1 key(s) destroyed" in out.getvalue()
    before = row_counts()
    with pytest.raises(CommandError, match="already erased"):
        call_command(
            "erase_subject_data", "--email", EMAIL, "--reason", "DSR-4", stderr=io.StringIO()
        )
    assert row_counts() == before


def test_an_officer_erases_from_the_merchant_screen(no_retention) -> None:
    merchant = closed_merchant()
    client = Client()
    client.force_login(make_staff("officer", roles.COMPLIANCE_OFFICER))
    assert (
        "Erase the contact person" in client.get(f"/kyc/merchants/{merchant.pk}/").content.decode()
    )
    before = row_counts()
    unconfirmed = client.post(
        f"/kyc/merchants/{merchant.pk}/subject-erase", {"reason": "DSR-5"}, follow=True
    )
    assert "tick the confirmation" in unconfirmed.content.decode()
    assert row_counts() == before
    done = client.post(
        f"/kyc/merchants/{merchant.pk}/subject-erase",
        {"reason": "DSR-5", "confirm": "on"},
        follow=True,
    )
    assert "data is erased" in done.content.decode()
    assert Merchant.objects.get(pk=merchant.pk).contact_email == ERASED


@pytest.mark.parametrize("role", [roles.KYC_ANALYST, roles.PAYMENTS_OPERATIONS, roles.AUDITOR])
def test_other_roles_cannot_erase_and_nothing_is_written(no_retention, role) -> None:
    merchant = closed_merchant()
    client = Client()
    client.force_login(make_staff("someone", role))
    assert "subject-erase" not in client.get(f"/kyc/merchants/{merchant.pk}/").content.decode()
    before = row_counts()
    response = client.post(
        f"/kyc/merchants/{merchant.pk}/subject-erase", {"reason": "x", "confirm": "on"}
    )
    assert response.status_code == 403
    assert row_counts() == before


def test_rotation_leaves_an_erased_key_erased(no_retention, settings) -> None:
    import base64
    import os

    from audits.crypto import rotation

    closed_merchant()
    privacy.subject_erase(email=EMAIL, actor=None, reason="DSR-6")
    newest = base64.urlsafe_b64encode(os.urandom(32)).decode()
    settings.FIELD_ENCRYPTION_KEYS = [newest, *settings.FIELD_ENCRYPTION_KEYS]
    call_command("rotate_keys", stdout=io.StringIO(), stderr=io.StringIO())
    assert rotation.key_status()[rotation.SUBJECT_KEYS] == {rotation.ERASED_KEY: 1}


def _console_new_contact(merchant: Merchant, email: str) -> None:
    admin = Client()
    admin.force_login(make_staff("admin", roles.ADMINISTRATOR))
    url = f"/admin/payments/merchant/{merchant.pk}/change/"
    page = admin.get(url)
    form = page.context["adminform"].form
    data: dict[str, object] = {}
    for name in form.fields:
        value = form[name].value()
        if value is True:
            data[name] = "on"
        elif value not in (None, False):
            data[name] = value
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(n): management[n].value() for n in management.fields})
    data["contact_email"] = email
    assert admin.post(url, data).status_code == 302


def _api_new_contact(merchant: Merchant, email: str) -> None:
    token = issue(make_staff("writer", roles.ADMINISTRATOR), ["merchants:read", "merchants:write"])
    response = client_for(token).patch(
        f"/api/v1/merchants/{merchant.pk}/", {"contact_email": email}, format="json"
    )
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("change", [_console_new_contact, _api_new_contact])
def test_a_new_contact_by_the_console_or_the_api_gets_a_new_key(no_retention, change) -> None:
    merchant = closed_merchant()
    old = merchant.contact_subject_id
    change(merchant, "new.contact@bakery.example")
    current = Merchant.objects.get(pk=merchant.pk)
    assert current.contact_subject_id != old
    assert SubjectKey.objects.get(pk=current.contact_subject_id).object_id == str(merchant.pk)

    privacy.subject_erase(email=EMAIL, actor=None, reason="DSR-7")

    current = Merchant.objects.get(pk=merchant.pk)
    assert current.contact_email == "new.contact@bakery.example"
    assert current.contact_phone == PHONE  # carried over under the new person's key
    assert SubjectKey.objects.get(pk=old).erased_at is not None


def test_expired_cached_keys_are_read_again_in_one_query_and_an_erased_one_dropped(
    no_retention,
) -> None:
    from django.test.utils import CaptureQueriesContext

    merchants = [closed_merchant(email=f"p{n}@bakery.example", name=f"P{n}") for n in range(5)]
    erased = merchants[0]
    SubjectKey.objects.filter(pk=erased.contact_subject_id).update(  # as another process would
        wrapped_key=b"", erased_at=timezone.now(), erasure_reason="DSR-8"
    )
    for subject_id, (key, _) in list(subjects._cache.items()):
        subjects._cache[subject_id] = (key, 0.0)  # every cached key past its time
    with CaptureQueriesContext(connection) as queries:
        read = {m.pk: m.contact_name for m in Merchant.objects.all()}
    assert sum("subject_keys" in q["sql"] for q in queries.captured_queries) == 1
    assert read[erased.pk] == ERASED
    assert [read[m.pk] for m in merchants[1:]] == ["P1", "P2", "P3", "P4"]
