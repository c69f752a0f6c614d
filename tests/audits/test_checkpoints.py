"""Signed checkpoints (issue 14, point 4): the chain heads signed with Ed25519 every hour,
append-only, exported as files; verify_audit_chain starts from the last good one."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audits import checkpoints, tasks
from audits.crypto import signing
from audits.models import AuditChainHead, AuditCheckpoint, PaymentAudit
from tests.audits.helpers import with_triggers_lifted
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def _edits(count: int) -> None:
    for n in range(count):
        payment = PaymentFactory(amount=1000 + n)
        with transaction.atomic():
            payment.description = f"edit {n}"
            payment.save()


def _verify(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_audit_chain", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _refused_verify(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("verify_audit_chain", *args, stdout=out, stderr=err)
    return str(raised.value), err.getvalue()


def _new_key() -> str:
    return signing.encode(Ed25519PrivateKey.generate().private_bytes_raw())


def _pk(row: Any) -> str:
    return row.id.hex if connection.vendor == "sqlite" else str(row.id)


def _checked(output: str) -> int:
    found = re.search(r"Checked ([\d,]+) rows", output)
    assert found, output
    return int(found.group(1).replace(",", ""))


def test_a_checkpoint_signs_every_chain_head_after_verifying_the_rows() -> None:
    _edits(4)
    checkpoint, report = checkpoints.checkpoint_create()
    stored = {str(h.chain): [h.seq, h.last_hash] for h in AuditChainHead.objects.all()}
    assert checkpoint.heads == stored
    assert checkpoint.rows == PaymentAudit.objects.count() == report.rows_checked
    assert checkpoint.key_id == signing.key_id(
        signing.private_key(django_settings.AUDIT_CHECKPOINT_SIGNING_KEY)
        .public_key()
        .public_bytes_raw()
    )
    checkpoints.check_signature(checkpoints.signed_heads(checkpoint))  # does not raise


def test_verification_starts_from_the_last_checkpoint_and_reads_only_newer_rows() -> None:
    _edits(5)
    checkpoint, _ = checkpoints.checkpoint_create()
    before = PaymentAudit.objects.count()
    _edits(2)
    new_rows = PaymentAudit.objects.count() - before
    output, _ = _verify()
    assert f"from checkpoint {checkpoint.pk} of" in output
    touched = {
        chain
        for chain, seq in PaymentAudit.objects.values_list("chain", "seq")
        if seq > checkpoint.heads[str(chain)][0]
    }
    anchors = sum(1 for chain in touched if checkpoint.heads[str(chain)][0] > 0)
    untouched_anchors = sum(
        1 for chain, (seq, _) in checkpoint.heads.items() if seq > 0 and int(chain) not in touched
    )
    # The new rows, plus the checkpoint's row in each chain (re-hashed as the anchor).
    assert _checked(output) == new_rows + anchors + untouched_anchors
    assert "OK: every chain verifies." in output
    full, _ = _verify("--full")
    assert "from genesis" in full
    assert _checked(full) == PaymentAudit.objects.count()


def test_a_row_altered_after_the_checkpoint_is_caught_and_no_checkpoint_is_signed() -> None:
    _edits(3)
    checkpoints.checkpoint_create()
    _edits(2)
    victim = PaymentAudit.objects.order_by("-created_at").first()
    with_triggers_lifted(
        "UPDATE payment_audits SET after_state = %s WHERE id = %s", ['{"amount": 1}', _pk(victim)]
    )
    message, _ = _refused_verify()
    assert f"row {victim.id} content does not match" in message
    with pytest.raises(checkpoints.CheckpointRefused, match="content does not match"):
        checkpoints.checkpoint_create()
    assert AuditCheckpoint.objects.count() == 1


def test_a_row_altered_before_the_checkpoint_is_caught_by_a_full_verification() -> None:
    _edits(4)
    checkpoint, _ = checkpoints.checkpoint_create()
    heads = {int(c): seq for c, (seq, _) in checkpoint.heads.items()}
    victim = next(
        row for row in PaymentAudit.objects.order_by("chain", "seq") if row.seq < heads[row.chain]
    )
    with_triggers_lifted(
        "UPDATE payment_audits SET object_id = 'forged' WHERE id = %s", [_pk(victim)]
    )
    # Incremental verification vouches only for rows after the signed heads...
    assert "OK" in _verify()[0]
    # ...the full one reads every row again.
    message, _ = _refused_verify("--full")
    assert f"row {victim.id} content does not match its hash" in message


def test_the_checkpoints_own_row_is_checked_as_the_anchor() -> None:
    _edits(3)
    checkpoint, _ = checkpoints.checkpoint_create()
    chain, (seq, _) = next((c, h) for c, h in checkpoint.heads.items() if h[0] > 0)
    anchor = PaymentAudit.objects.get(chain=int(chain), seq=seq)
    with_triggers_lifted(
        "UPDATE payment_audits SET object_id = 'forged' WHERE id = %s", [_pk(anchor)]
    )
    message, _ = _refused_verify()
    assert f"chain {chain} seq {seq}: row {anchor.id} does not match the checkpoint" in message


@pytest.mark.parametrize(
    "forgery",
    [
        "UPDATE payment_audit_checkpoints SET rows = rows + 1",
        "UPDATE payment_audit_checkpoints SET signature = 'AAAA'",
        "UPDATE payment_audit_checkpoints SET created_at = created_at - interval '1 hour'",
    ],
    ids=["altered-count", "forged-signature", "altered-time"],
)
def test_a_forged_or_altered_checkpoint_is_refused_with_a_clear_message(forgery: str) -> None:
    if connection.vendor == "sqlite" and "interval" in forgery:
        forgery = "UPDATE payment_audit_checkpoints SET created_at = '2020-01-01 00:00:00'"
    _edits(3)
    checkpoint, _ = checkpoints.checkpoint_create()
    with_triggers_lifted(forgery)
    message, err = _refused_verify()
    assert f"checkpoint {checkpoint.pk} of" in message
    assert "signature does not verify" in message
    assert "forged or altered" in message
    assert "REFUSED" in err
    # Nothing is signed on top of a forged checkpoint either.
    with pytest.raises(checkpoints.CheckpointRefused, match="signature does not verify"):
        checkpoints.checkpoint_create()
    assert AuditCheckpoint.objects.count() == 1


def test_a_checkpoint_signed_with_a_key_not_configured_is_refused(settings: Any) -> None:
    _edits(2)
    settings.AUDIT_CHECKPOINT_SIGNING_KEY = _new_key()  # an attacker's key
    checkpoints.checkpoint_create()
    settings.AUDIT_CHECKPOINT_SIGNING_KEY = django_settings.AUDIT_CHECKPOINT_SIGNING_KEY
    message, _ = _refused_verify()
    assert "not in AUDIT_CHECKPOINT_PUBLIC_KEYS" in message


def test_keys_rotate_and_older_checkpoints_still_verify(settings: Any) -> None:
    _edits(2)
    old, _ = checkpoints.checkpoint_create()
    new_key = _new_key()
    settings.AUDIT_CHECKPOINT_SIGNING_KEY = new_key
    settings.AUDIT_CHECKPOINT_PUBLIC_KEYS = [
        signing.public_key_of(new_key),
        *settings.AUDIT_CHECKPOINT_PUBLIC_KEYS,
    ]
    _edits(1)
    new, _ = checkpoints.checkpoint_create()
    assert new.key_id != old.key_id
    checkpoints.check_signature(checkpoints.signed_heads(old))
    output, _ = _verify()
    assert f"from checkpoint {new.pk} of" in output
    # The old key retired: its checkpoint no longer verifies, the newer one still does.
    settings.AUDIT_CHECKPOINT_PUBLIC_KEYS = settings.AUDIT_CHECKPOINT_PUBLIC_KEYS[:1]
    with pytest.raises(signing.SignatureRefused, match="not in AUDIT_CHECKPOINT_PUBLIC_KEYS"):
        checkpoints.check_signature(checkpoints.signed_heads(old))
    assert "OK" in _verify()[0]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE payment_audit_checkpoints SET rows = 0",
        "DELETE FROM payment_audit_checkpoints",
    ],
)
def test_checkpoint_rows_are_append_only(statement: str) -> None:
    _edits(1)
    checkpoints.checkpoint_create()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert AuditCheckpoint.objects.filter(rows__gt=0).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_checkpoints_cannot_be_truncated() -> None:
    _edits(1)
    checkpoints.checkpoint_create()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("TRUNCATE payment_audit_checkpoints")
    assert AuditCheckpoint.objects.count() == 1


def test_the_command_signs_and_exports_read_only_files(tmp_path: Path, settings: Any) -> None:
    settings.AUDIT_CHECKPOINT_EXPORT_DIR = str(tmp_path / "worm")
    _edits(2)
    out = io.StringIO()
    call_command("audit_checkpoint", stdout=out)
    checkpoint = AuditCheckpoint.objects.get()
    files = list((tmp_path / "worm").iterdir())
    assert [f.name for f in files] == [checkpoints.file_name(checkpoint)]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o444
    document = json.loads(files[0].read_text())
    assert document["heads"] == checkpoint.heads
    assert document["signature"] == checkpoint.signature
    assert f"wrote {files[0]}" in out.getvalue()
    # A second run signs a new checkpoint and writes only that one.
    call_command("audit_checkpoint", stdout=io.StringIO())
    assert len(list((tmp_path / "worm").iterdir())) == 2


def test_the_hourly_task_signs_and_exports(tmp_path: Path, settings: Any) -> None:
    settings.AUDIT_CHECKPOINT_EXPORT_DIR = str(tmp_path)
    assert "audit-checkpoint" in settings.CELERY_BEAT_SCHEDULE
    _edits(1)
    pk = tasks.audit_checkpoint.delay().get()
    assert AuditCheckpoint.objects.get().pk == pk
    assert len(list(tmp_path.iterdir())) == 1


def test_export_without_a_directory_is_a_clear_error(settings: Any) -> None:
    settings.AUDIT_CHECKPOINT_EXPORT_DIR = ""
    with pytest.raises(CommandError, match="set AUDIT_CHECKPOINT_EXPORT_DIR"):
        call_command("audit_checkpoint", "--export-only", stdout=io.StringIO())
    assert not AuditCheckpoint.objects.exists()


def test_verification_from_an_exported_file(tmp_path: Path) -> None:
    _edits(3)
    call_command("audit_checkpoint", "--export-dir", str(tmp_path), stdout=io.StringIO())
    (path,) = tmp_path.iterdir()
    _edits(1)
    output, _ = _verify("--checkpoint", str(path))
    assert "The signature of checkpoint file" in output
    assert "OK: every chain verifies." in output


def test_an_altered_checkpoint_file_is_refused(tmp_path: Path) -> None:
    _edits(3)
    call_command("audit_checkpoint", "--export-dir", str(tmp_path), stdout=io.StringIO())
    (path,) = tmp_path.iterdir()
    document = json.loads(path.read_text())
    chain = next(c for c, (seq, _) in document["heads"].items() if seq > 0)
    document["heads"][chain][0] -= 1  # pretend the chain was shorter
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    message, _ = _refused_verify("--checkpoint", str(forged))
    assert "refused: the signature does not verify" in message
    not_json = tmp_path / "nonsense.json"
    not_json.write_text("{")
    message, _ = _refused_verify("--checkpoint", str(not_json))
    assert "cannot read" in message


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--workers must be 1 or more"):
        _verify("--workers", "0")
    with pytest.raises(CommandError, match="exclude each other"):
        _verify("--full", "--checkpoint", str(tmp_path / "x.json"))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_chains_are_verified_in_parallel_processes_each_with_its_own_connection() -> None:
    _edits(6)
    output, _ = _verify("--full", "--workers", "2")
    assert _checked(output) == PaymentAudit.objects.count()
    victim = PaymentAudit.objects.order_by("chain", "seq")[2]
    with_triggers_lifted(
        "UPDATE payment_audits SET after_state = %s WHERE id = %s", ['{"x": 1}', str(victim.id)]
    )
    message, _ = _refused_verify("--full", "--workers", "2")
    assert f"row {victim.id} content does not match" in message


def _start(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AUDIT_CHECKPOINT") and k not in {"DEBUG", "SANDBOX_ENABLED"}
    }
    environment.update(
        DEBUG="0",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="backoffice.example.com",
        FIELD_ENCRYPTION_KEYS="ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE=",
        DJANGO_SETTINGS_MODULE="config.settings",
        **env,
    )
    return subprocess.run(  # our own interpreter and settings
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=django_settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_refuses_to_start_without_a_good_signing_key() -> None:
    missing = _start()
    assert missing.returncode != 0
    assert "AUDIT_CHECKPOINT_SIGNING_KEY must be set when DEBUG is off" in missing.stderr
    malformed = _start(AUDIT_CHECKPOINT_SIGNING_KEY=signing.encode(b"short"))
    assert "AUDIT_CHECKPOINT_SIGNING_KEY decodes to 5 bytes; 32 are needed" in malformed.stderr
    key = _new_key()
    unverifiable = _start(AUDIT_CHECKPOINT_SIGNING_KEY=key, AUDIT_CHECKPOINT_PUBLIC_KEYS=_new_key())
    assert "lacks the public key of AUDIT_CHECKPOINT_SIGNING_KEY" in unverifiable.stderr
    assert _start(AUDIT_CHECKPOINT_SIGNING_KEY=key).stdout.strip() == "started"
