"""payment_audits partitioned by month (issue 14, point 4): rows land in their month, every
partition is append-only, a forged row in an old month is caught, and an old month detached to
cold storage stays verifiable from its export while what stays attached verifies too."""

from __future__ import annotations

import datetime
import io
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audits import chain, checkpoints, cold_storage, context, partitions, tasks
from audits.models import AuditDetachment, PaymentAudit

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TODAY = datetime.datetime.now(datetime.UTC).date()
CURRENT = partitions.month_start(TODAY)
OLDER, OLD = partitions.month_add(CURRENT, -3), partitions.month_add(CURRENT, -2)


def _append(at: datetime.datetime, object_id: str) -> PaymentAudit:
    row = PaymentAudit(
        user_id=context.ensure_system_user().pk,
        action_type="test.payment.update",
        object_type="payments.payment",
        object_id=object_id,
        after_state={"status": "captured"},
        ip_address="127.0.0.1",
        request_id="",
        created_at=at,
    )
    with transaction.atomic():
        return chain.append(row)


def _in(month: datetime.date, day: int = 10) -> datetime.datetime:
    return datetime.datetime(month.year, month.month, day, 12, tzinfo=datetime.UTC)


def _where(row: PaymentAudit) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM payment_audits WHERE id = %s", [str(row.id)]
        )
        return str(cursor.fetchone()[0])


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return int(cursor.fetchone()[0])


def _attached() -> set[str]:
    return {p.name for p in partitions.attached()}


@pytest.fixture
def months() -> Iterator[dict[str, PaymentAudit]]:
    """Rows in two old months (partitions made for them) and this month. Partitions made here
    are dropped afterwards: a transactional test commits them."""
    made = partitions.ensure([OLDER, OLD]).created
    yield {
        "older": _append(_in(OLDER), "1"),
        "old": _append(_in(OLD), "2"),
        "current": _append(timezone.now(), "3"),
    }
    if connection.in_atomic_block:
        return  # the test's rollback takes them away
    with connection.cursor() as cursor:
        for name in made:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def history(months: dict[str, PaymentAudit]) -> dict[str, PaymentAudit]:
    """And a row in DEFAULT: a month long ago, with no partition."""
    return {**months, "default": _append(_in(partitions.month_add(CURRENT, -30)), "4")}


def test_migrate_made_this_month_the_next_ones_and_default_each_append_only() -> None:
    expected = [partitions.partition_name(partitions.month_add(CURRENT, n)) for n in range(4)]
    assert set(expected) | {partitions.DEFAULT} <= _attached()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relname = ANY(%s) AND NOT t.tgisinternal",
            [[*expected, partitions.DEFAULT]],
        )
        states = {(table, name): enabled for table, name, enabled in cursor.fetchall()}
    for table in [*expected, partitions.DEFAULT]:
        assert states[(table, "payment_audits_append_only")] == "A"
        assert states[(table, f"{table}_no_truncate")] == "A"


def test_rows_of_several_months_land_in_their_partitions(history: dict[str, PaymentAudit]) -> None:
    assert _where(history["older"]) == partitions.partition_name(OLDER)
    assert _where(history["old"]) == partitions.partition_name(OLD)
    assert _where(history["current"]) == partitions.partition_name(CURRENT)
    assert _where(history["default"]) == partitions.DEFAULT
    assert partitions.default_rows() == 1
    from config import metrics

    assert metrics.gauges_read()["audit_default_rows"] == 1
    out = io.StringIO()
    err = io.StringIO()
    call_command("audit_partitions", stdout=out, stderr=err)
    assert partitions.partition_name(OLD) in out.getvalue()
    assert "1 row(s) in payment_audits_default" in err.getvalue()


def _refused(sql: str) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    except DatabaseError as exc:
        assert "append-only" in str(exc)
        return True
    return False


def _table(which: str) -> str:
    return {
        "parent": "payment_audits",
        "old month": partitions.partition_name(OLD),
        "current month": partitions.partition_name(CURRENT),
        "default": partitions.DEFAULT,
    }[which]


WHICH = ["parent", "old month", "current month", "default"]


@pytest.mark.parametrize("which", WHICH)
def test_update_and_delete_are_refused_on_every_partition(
    which: str, history: dict[str, PaymentAudit]
) -> None:
    table = _table(which)
    before = _count(table)
    assert before >= 1
    assert _refused(f"UPDATE {table} SET action_type = 'edited'")
    assert _refused(f"DELETE FROM {table}")
    assert _refused(f"SET LOCAL session_replication_role = replica; DELETE FROM {table}")
    assert _count(table) == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("which", WHICH)
def test_truncate_is_refused_on_every_partition(
    which: str, history: dict[str, PaymentAudit]
) -> None:
    table = _table(which)
    before = _count(table)
    assert _refused(f"TRUNCATE {table} CASCADE")
    assert _refused(f"SET LOCAL session_replication_role = replica; TRUNCATE {table} CASCADE")
    assert _count(table) == before


def test_a_partition_made_later_gets_the_triggers_and_the_index_names() -> None:
    month = partitions.month_add(CURRENT, 9)
    result = call_command_output("audit_partitions", "--ensure", "--months-ahead", "9")
    name = partitions.partition_name(month)
    assert f"created {name}" in result
    assert _refused(f"TRUNCATE {name}")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relname = %s AND NOT t.tgisinternal",
            [name],
        )
        assert dict(cursor.fetchall()) == {
            "payment_audits_append_only": "A",
            f"{name}_no_truncate": "A",
        }
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [name])
        assert f"payment_audit_device_idx_{name[-8:]}" in {r[0] for r in cursor.fetchall()}
    again = call_command_output("audit_partitions", "--ensure", "--months-ahead", "9")
    assert f"exists  {name}" in again


def call_command_output(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_beat_task_makes_the_months_ahead() -> None:
    from django.conf import settings as django_settings

    schedule = django_settings.CELERY_BEAT_SCHEDULE["audit-partitions-ensure"]
    assert schedule["task"] == "audits.tasks.audit_partitions_ensure"
    assert tasks.audit_partitions_ensure() == []  # migrate made them already


def _lifted_on(table: str, sql: str, params: list[object]) -> None:
    """As a superuser could: switch the partition's trigger off, change a row, switch it on."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER payment_audits_append_only")
        cursor.execute(sql, params)
        cursor.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER payment_audits_append_only")


def test_a_forged_row_in_an_old_partition_is_caught(history: dict[str, PaymentAudit]) -> None:
    victim = history["old"]
    table = partitions.partition_name(OLD)
    _lifted_on(
        table, f"UPDATE {table} SET after_state = %s WHERE id = %s", ['{"x": 1}', str(victim.id)]
    )
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="altered"):
        call_command("verify_audit_chain", "--full", stdout=out, stderr=err)
    assert str(victim.id) in err.getvalue()


def test_a_partition_s_disabled_trigger_fails_the_compliance_check() -> None:
    from audits.compliance import checks

    table = partitions.partition_name(CURRENT)
    assert checks.audit_rows_protected().status == checks.PASS
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_truncate")
    finding = checks.audit_rows_protected()
    assert finding.status == checks.FAIL
    assert f"{table}: {table}_no_truncate (disabled)" in finding.evidence


# Detaching to cold storage


def _detach(month: datetime.date, directory: Path, *args: str) -> str:
    out = io.StringIO()
    call_command(
        "audit_partitions",
        "--detach",
        month.isoformat()[:7],
        "--export",
        str(directory),
        *args,
        stdout=out,
    )
    return out.getvalue()


def _verify(*args: str) -> str:
    out = io.StringIO()
    call_command("verify_audit_chain", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_an_old_month_is_exported_detached_and_both_sides_still_verify(
    months: dict[str, PaymentAudit], tmp_path: Path
) -> None:
    checkpoints.checkpoint_create()
    # The oldest month first: the next one waits.
    _refuse_nothing_changes(lambda: _detach(OLD, tmp_path), "older than", tmp_path)
    printed = _detach(OLDER, tmp_path)
    name = partitions.partition_name(OLDER)
    assert f"detached {name}" in printed
    assert name not in _attached()
    data, manifest = tmp_path / f"{name}.json", tmp_path / f"{name}.manifest.json"
    assert not os.stat(data).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    document = json.loads(manifest.read_text())
    assert document["rows"] == 1 and document["partition"] == name
    row = months["older"]
    assert document["boundary"][str(row.chain)] == [row.seq, row.row_hash]
    detached = AuditDetachment.objects.get()
    assert detached.rows == 1 and detached.file_sha256 == document["sha256"]

    assert cold_storage.verify_export(manifest) == (1, [])
    assert "OK" in call_command_output("audit_partitions", "--verify-file", str(manifest))
    # What stays attached verifies: from the checkpoint, from the boundary, from the file.
    assert "OK: every chain verifies" in _verify()
    full = _verify("--full")
    assert "OK: every chain verifies" in full and "detach boundary" in full
    assert "OK: every chain verifies" in _verify("--full", "--from-manifest", str(manifest))

    # The exported file altered: the offline verification says so.
    os.chmod(data, 0o644)
    data.write_text(data.read_text().replace('"captured"', '"refunded"'))
    _, problems = cold_storage.verify_export(manifest)
    assert any("sha256" in p for p in problems)
    assert any("altered" in p for p in problems)
    with pytest.raises(CommandError, match="verification failed"):
        call_command_output("audit_partitions", "--verify-file", str(manifest))


def _refuse_nothing_changes(detach: Callable[[], object], reason: str, directory: Path) -> None:
    attached = _attached()
    rows = PaymentAudit.objects.count()
    with pytest.raises(CommandError, match=reason) as raised:
        detach()
    assert "Nothing was changed" in str(raised.value)
    assert _attached() == attached
    assert PaymentAudit.objects.count() == rows
    assert not AuditDetachment.objects.exists()
    assert not list(directory.glob("*.json"))


def test_the_current_or_a_future_month_is_refused(
    months: dict[str, PaymentAudit], tmp_path: Path
) -> None:
    checkpoints.checkpoint_create()
    _refuse_nothing_changes(lambda: _detach(CURRENT, tmp_path), "current month", tmp_path)
    ahead = partitions.month_add(CURRENT, 1)
    _refuse_nothing_changes(lambda: _detach(ahead, tmp_path), "future", tmp_path)


def test_rows_newer_than_the_last_signed_checkpoint_are_refused(
    months: dict[str, PaymentAudit], tmp_path: Path
) -> None:
    _refuse_nothing_changes(lambda: _detach(OLDER, tmp_path), "no signed checkpoint", tmp_path)
    checkpoints.checkpoint_create()
    # A late row of that month, after the checkpoint (a clock behind, say).
    _append(_in(OLDER, 20), "1")
    _refuse_nothing_changes(
        lambda: _detach(OLDER, tmp_path), "newer than the last signed checkpoint", tmp_path
    )


def test_bad_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    for args, message in [
        (["--detach", "2026-13", "--export", str(tmp_path)], "is not a month"),
        (["--detach", "last-month", "--export", str(tmp_path)], "is not a month"),
        (["--detach", OLD.isoformat()[:7]], "needs --export"),
        (["--ensure", "--months-ahead", "99"], "between 0 and 24"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("audit_partitions", *args, stdout=io.StringIO())
    missing = tmp_path / "none.manifest.json"
    with pytest.raises(CommandError, match="cannot read"):
        call_command_output("audit_partitions", "--verify-file", str(missing))
    assert not AuditDetachment.objects.exists()


def test_a_forged_detachment_record_cannot_skip_rows(months: dict[str, PaymentAudit]) -> None:
    """A boundary beyond the signed checkpoint (someone inserting a detachment record to make
    verification skip rows) is a problem, not a shortcut."""
    checkpoints.checkpoint_create()
    late = _append(timezone.now(), "3")
    AuditDetachment.objects.create(
        month=OLD,
        partition=partitions.partition_name(OLD),
        rows=1,
        file_name="forged.json",
        file_sha256="0" * 64,
        boundary={str(late.chain): [late.seq, late.row_hash]},
        checkpoint_pk=0,
    )
    with pytest.raises(CommandError, match="detach boundary beyond the signed checkpoint"):
        _verify()


def test_generated_history_lands_in_month_partitions_not_default() -> None:
    """generate_data COPYs a year of audit rows into the partitioned table: it makes a
    partition for each month first, so DEFAULT stays empty, and the rows verify."""
    call_command(
        "generate_data",
        *("--merchants", "2", "--payments", "50", "--kyc-cases", "0"),
        *("--audit-rows", "600", "--batch-size", "300"),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert partitions.default_rows() == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT tableoid) FROM payment_audits")
        assert cursor.fetchone()[0] >= 12
    assert _verify("--full").count("OK: every chain verifies") == 1
