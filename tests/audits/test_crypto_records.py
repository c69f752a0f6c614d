"""Encrypted records: merchant contacts, KYC documents and evidence files, their audit rows,
blind-index search, key_status and rotate_keys."""

from __future__ import annotations

import base64
import os
from io import StringIO

import pytest
from django.contrib.admin.sites import site
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection, transaction
from django.http import FileResponse
from django.test import RequestFactory

from audits.crypto import envelope, legacy, rotation
from audits.crypto.keys import provider
from audits.crypto.reveal import reveal_state
from audits.models import PaymentAudit
from kyc import services as kyc_services
from payments.models import Merchant
from payments.services.merchants import merchant_create

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n" + b"confidential passport scan " * 200 + b"\n%%EOF\n"
CONTACT = {
    "contact_name": "Ana Pereira",
    "contact_email": "Ana.Pereira@bakery.example",
    "contact_phone": "+44 20 7946 0123",
}


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture(autouse=True)
def _keys_and_media(settings, tmp_path):
    settings.FIELD_ENCRYPTION_KEYS = [new_key()]
    settings.PRIVATE_MEDIA_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "audits.crypto.storage.EncryptedFileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }


def add_newest_key(settings) -> str:
    settings.FIELD_ENCRYPTION_KEYS = [new_key(), *settings.FIELD_ENCRYPTION_KEYS]
    return provider().key_ids()[0]


def merchant(n: int = 0, **contact: str) -> Merchant:
    return merchant_create(legal_name=f"Bakery {n} Ltd", country="GB", **{**CONTACT, **contact})


def raw_text(sql: str, params: list[object]) -> str:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return " ".join(str(row) for row in cursor.fetchall())


def assert_no_plaintext(text: str, *values: str) -> None:
    for value in values:
        assert value not in text and value.lower() not in text


def test_the_columns_hold_envelopes_and_python_sees_plaintext() -> None:
    created = merchant()
    stored = raw_text(
        "select contact_name, contact_email, contact_phone, contact_email_index "
        "from payments_merchant where id = %s",
        [created.pk],
    )
    assert_no_plaintext(stored, *CONTACT.values(), "7946")
    assert stored.count("enc:aes256gcm-v1:") == 3
    fresh = Merchant.objects.get(pk=created.pk)
    assert [fresh.contact_name, fresh.contact_email, fresh.contact_phone] == list(CONTACT.values())


def test_the_audit_rows_hold_the_envelopes_never_the_plaintext() -> None:
    created = merchant()
    with transaction.atomic():
        created.contact_phone = "+44 20 7946 0999"
        created.save()
    column = raw_text("select contact_phone from payments_merchant where id = %s", [created.pk])
    audit_rows = raw_text(
        "select changes_text, changes::text from auditlog_logentry where object_pk = %s "
        "and content_type_id = (select id from django_content_type where model = 'merchant')",
        [str(created.pk)],
    ) + raw_text(
        "select before_state::text, after_state::text from payment_audits "
        "where object_type = 'payments.merchant' and object_id = %s",
        [str(created.pk)],
    )
    assert_no_plaintext(audit_rows, *CONTACT.values(), "7946", "0999")
    assert column.strip("(),' ") in audit_rows  # the envelope stored is the envelope audited
    update = PaymentAudit.objects.get(object_id=str(created.pk), action_type__endswith=".update")
    after = update.after_state
    assert envelope.decrypt(after["contact_phone"], context="payments.merchant.contact_phone") == (
        "+44 20 7946 0999"
    )


def test_saving_again_keeps_the_ciphertext_and_writes_no_audit_row() -> None:
    created = merchant()
    before = raw_text("select contact_email from payments_merchant where id = %s", [created.pk])
    audits = PaymentAudit.objects.count()
    with transaction.atomic():
        Merchant.objects.get(pk=created.pk).save()
    assert raw_text("select contact_email from payments_merchant where id = %s", [created.pk]) == (
        before
    )
    assert PaymentAudit.objects.count() == audits


def test_the_console_finds_a_contact_email_exactly_by_its_blind_index(settings, admin_user) -> None:
    wanted, other = merchant(1), merchant(2, contact_email="someone@else.example")
    admin = site._registry[Merchant]
    request = RequestFactory().get("/admin/payments/merchant/")
    request.user = admin_user

    def search(term: str) -> set[int]:
        found, _ = admin.get_search_results(request, Merchant.objects.all(), term)
        return set(found.values_list("pk", flat=True))

    assert search("ana.pereira@bakery.example") == {wanted.pk}  # any case
    assert search("  Ana.Pereira@bakery.example ") == {wanted.pk}
    assert search("ana.pereira@bakery") == set()  # exact only
    add_newest_key(settings)
    assert search("someone@else.example") == {other.pk}  # rows not yet rotated are found
    call_command("rotate_keys", stdout=StringIO())
    assert search("someone@else.example") == {other.pk}


def test_documents_and_evidence_are_encrypted_on_disk_and_stream_back(tmp_path) -> None:
    from kyc.models import KycCase

    case = kyc_services.kyc_case_create(merchant=merchant(), kind=KycCase.Kind.KYB)
    document = kyc_services.kyc_document_upload(
        case=case, document_type="passport", upload=SimpleUploadedFile("p.pdf", PDF)
    )
    on_disk = (tmp_path / document.file.name).read_bytes()
    assert b"confidential" not in on_disk and not on_disk.startswith(b"%PDF")
    response = FileResponse(document.file.open("rb"), content_type="application/pdf")
    assert b"".join(response.streaming_content) == PDF  # type: ignore[arg-type]
    snapshot = raw_text(
        "select after_state::text from payment_audits where object_type = 'kyc.kycdocument'", []
    )
    assert "confidential" not in snapshot


def test_rotation_is_resumable_and_old_values_read_meanwhile(settings, tmp_path) -> None:
    from kyc.models import KycCase

    merchants = [merchant(n, contact_email=f"ana{n}@bakery.example") for n in range(5)]
    case = kyc_services.kyc_case_create(merchant=merchants[0], kind=KycCase.Kind.KYB)
    kyc_services.kyc_document_upload(
        case=case, document_type="passport", upload=SimpleUploadedFile("p.pdf", PDF)
    )
    old = provider().key_ids()[0]
    newest = add_newest_key(settings)

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(label: str, done: int, total: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        rotation.rotate(batch_size=2, progress=stop_after_first_batch)
    # Contact persons' values are sealed under their own keys: rotation re-wraps those keys.
    halfway = rotation.key_status()
    assert halfway["payments.merchant.contact_name"] == {rotation.PERSON_KEY: 5}
    assert halfway[rotation.SUBJECT_KEYS] == {newest: 2, old: 3}
    assert [m.contact_email for m in Merchant.objects.order_by("pk")] == [
        f"ana{n}@bakery.example" for n in range(5)
    ]
    security_rows = PaymentAudit.objects.filter(action_type="security.keys.rotate").count()
    out = StringIO()
    call_command("rotate_keys", "--batch-size", "2", stdout=out)
    assert f"{rotation.SUBJECT_KEYS}: 3/3" in out.getvalue()  # only what was left
    assert PaymentAudit.objects.filter(action_type="security.keys.rotate").count() == (
        security_rows + 1
    )
    status = rotation.key_status()
    for label in (
        "payments.merchant.contact_name",
        "payments.merchant.contact_email",
        "payments.merchant.contact_phone",
    ):
        assert status[label] == {rotation.PERSON_KEY: 5}
    assert status[rotation.SUBJECT_KEYS] == {newest: 5}
    assert status["kyc.kycdocument.file"] == {newest: 1}
    # The audit rows hold the persons' envelopes: they need no old KEK once their persons' keys
    # moved, so the old key can retire and the trail still reads.
    assert status["audit rows (payment_audits)"][old] == 0
    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]  # the old key retired
    assert [m.contact_phone for m in Merchant.objects.all()] == [CONTACT["contact_phone"]] * 5
    created = PaymentAudit.objects.filter(
        object_type="payments.merchant", object_id=str(merchants[0].pk)
    ).earliest("created_at")
    assert reveal_state(created.object_type, created.after_state)["contact_email"] == (
        "ana0@bakery.example"
    )
    assert b"".join(case.documents.get().file.open("rb").chunks()) == PDF
    out = StringIO()
    call_command("key_status", stdout=out)
    assert f"payments.merchant.contact_email: {rotation.PERSON_KEY}: 5" in out.getvalue()
    assert f"{rotation.SUBJECT_KEYS}: {newest}: 5" in out.getvalue()
    assert f"kyc.kycdocument.file: {newest}: 1" in out.getvalue()


def test_values_stored_before_encryption_are_read_and_then_sealed(tmp_path) -> None:
    created = merchant()
    with connection.cursor() as cursor:
        cursor.execute(
            "update payments_merchant set contact_email = %s, contact_email_index = '' "
            "where id = %s",
            ["legacy@bakery.example", created.pk],
        )
    assert Merchant.objects.get(pk=created.pk).contact_email == "legacy@bakery.example"
    assert rotation.key_status()["payments.merchant.contact_email"][rotation.PLAINTEXT] == 1
    assert legacy.seal_plaintext_values(Merchant) == 1
    stored = raw_text("select contact_email from payments_merchant where id = %s", [created.pk])
    assert "legacy" not in stored
    found = Merchant.objects.filter(
        contact_email_index__in=envelope.blind_index_candidates("legacy@bakery.example")
    )
    assert list(found) == [Merchant.objects.get(pk=created.pk)]


def test_a_plaintext_file_is_sealed_by_the_migration_helper(tmp_path) -> None:
    from kyc.models import KycCase, KycDocument

    case = kyc_services.kyc_case_create(merchant=merchant(), kind=KycCase.Kind.KYB)
    document = kyc_services.kyc_document_upload(
        case=case, document_type="passport", upload=SimpleUploadedFile("p.pdf", PDF)
    )
    (tmp_path / document.file.name).write_bytes(PDF)  # as stored before encryption
    assert rotation.key_status()["kyc.kycdocument.file"] == {rotation.PLAINTEXT: 1}
    assert legacy.seal_plaintext_files(KycDocument, "file") == 1
    assert b"confidential" not in (tmp_path / document.file.name).read_bytes()
    assert b"".join(document.file.open("rb").chunks()) == PDF


def test_the_audit_screens_show_the_values_and_a_retired_key_reads_as_unreadable(settings) -> None:
    from audits.crypto.reveal import UNREADABLE, reveal_state
    from audits.presenters import audit_rows_readable

    created = merchant()
    with transaction.atomic():
        created.contact_phone = "+44 20 7946 0999"
        created.save()
    rows = list(PaymentAudit.objects.filter(object_id=str(created.pk)))
    lines = " ".join(str(line) for entry in audit_rows_readable(rows) for line in entry.changes)
    assert "+44 20 7946 0999" in lines
    settings.FIELD_ENCRYPTION_KEYS = [new_key()]  # the key those rows were written with is gone
    update = next(row for row in rows if row.action_type.endswith(".update"))
    assert reveal_state(update.object_type, update.after_state)["contact_phone"] == UNREADABLE


def test_evidence_files_are_encrypted_on_disk_and_read_back(tmp_path, admin_user) -> None:
    from payments.services.disputes import evidence_add_file
    from tests.payments.factories import ChargebackFactory

    stored = evidence_add_file(
        chargeback=ChargebackFactory(), upload=SimpleUploadedFile("e.pdf", PDF), actor=admin_user
    )
    assert b"confidential" not in (tmp_path / stored.file.name).read_bytes()
    assert b"".join(stored.file.open("rb").chunks()) == PDF
    assert rotation.key_status()["payments.evidencefile.file"] == {provider().key_ids()[0]: 1}


def test_rotation_never_overwrites_a_value_changed_after_it_was_read(settings) -> None:
    created = merchant()
    add_newest_key(settings)
    column = rotation.Column(Merchant, Merchant._meta.get_field("contact_phone"))
    read = raw_text("select contact_phone from payments_merchant where id = %s", [created.pk])
    sql = rotation._update_sql(column, [])
    with connection.cursor() as cursor:
        # The row changes (a save through the service) between rotation's read and its write.
        with transaction.atomic():
            created.contact_phone = "+1 555 0100"
            created.save()
        cursor.executemany(sql, [["enc:stale", created.pk, read.strip("(),' ")]])
    assert Merchant.objects.get(pk=created.pk).contact_phone == "+1 555 0100"


def test_the_storage_saves_and_serves_a_10_mb_upload_in_bounded_memory(tmp_path) -> None:
    import tracemalloc

    from django.core.files.storage import default_storage
    from django.core.files.uploadedfile import TemporaryUploadedFile

    size = 10 * 1024 * 1024
    upload = TemporaryUploadedFile("big.pdf", "application/pdf", size, None)
    block = b"%PDF-" + os.urandom(64 * 1024 - 5)
    for _ in range(size // len(block)):
        upload.write(block)
    upload.seek(0)
    tracemalloc.start()
    try:
        name = default_storage.save("kyc/big", upload)
        _, save_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0
        with default_storage.open(name) as stored:
            for chunk in stored.chunks():
                total += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        upload.close()
    assert total == size // len(block) * len(block)
    assert block[:64] not in (tmp_path / name).read_bytes()[: 1024 * 1024]
    # The spooled upload is read and encrypted in chunks, never moved into place in the clear.
    assert save_peak < 2 * 1024 * 1024 and read_peak < 2 * 1024 * 1024
