"""Old month partitions of payment_audits detached to cold storage, and still verifiable.

`audit_partitions --detach 2026-01 --export DIR` writes the month's rows as an evidence file
(audits/evidence.py: every row with its hashes, read-only, never overwritten) and a manifest
beside it (the file's sha256, its row count, each chain's first and last seq and hashes, and the
boundary: every chain's last row in cold storage so far), then DETACHes the partition and keeps
an AuditDetachment row. The detached table is kept (its triggers still refuse changes) unless
`--drop` is given; dropping it takes the table's owner.

A month is detached only when it is in the past, no older row is still attached (oldest month
first), and the newest signed checkpoint covers every row of it: verification of the rows that
stay attached then starts from that checkpoint, or from the boundary, and never from a row that
is gone. `audit_partitions --verify-file MANIFEST` verifies an exported month on its own.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from config.files import file_sha256

from . import evidence, partitions
from .boundary import MANIFEST_FORMAT, ChainSpan, Heads, boundary_recorded, read_manifest
from .chain import GENESIS_HASH
from .checkpoints import checkpoint_latest_good
from .models import AuditCheckpoint, AuditDetachment, PaymentAudit


class DetachRefused(partitions.PartitionError):
    """The month cannot be detached now; nothing was written or changed."""


@dataclass
class Detached:
    partition: str
    rows: int
    file: Path
    manifest: Path
    sha256: str
    dropped: bool


def partition_detach(
    month: datetime.date, directory: Path, *, drop: bool = False, today: datetime.date | None = None
) -> Detached:
    """Export the month's rows and manifest to `directory`, then detach its partition.
    Raises DetachRefused (nothing changed, no file left) when it may not be detached."""
    if not partitions.is_partitioned():
        raise DetachRefused("payment_audits is not partitioned on this database")
    name = partitions.partition_name(month)
    current = partitions.month_start(today or datetime.datetime.now(datetime.UTC).date())
    if month >= current:
        raise DetachRefused(
            f"{name} is the current month or a future one: only past months can be detached"
        )
    if name not in {p.name for p in partitions.attached()}:
        raise DetachRefused(f"{name} is not an attached partition of payment_audits")
    data_path, manifest_path = directory / f"{name}.json", directory / f"{name}.manifest.json"
    for path in (data_path, manifest_path):
        if path.exists():
            raise DetachRefused(f"{path} exists already: an export is never overwritten")
    directory.mkdir(parents=True, exist_ok=True)
    low, high = partitions.bounds(month)
    try:
        with transaction.atomic():
            # No row may enter or leave the partition between the checks and the detach.
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {name} IN SHARE MODE")
            checkpoint_pk, ends = _checks(name, low, high)
            sha256, spans = _export(name, low, high, data_path)
            _check_spans(name, ends, spans)
            rows = sum(span.rows for span in spans.values())
            previous, _ = boundary_recorded()
            boundary = {**previous, **{c: (s.last_seq, s.last_hash) for c, s in spans.items()}}
            _write_manifest(
                manifest_path, name, month, data_path, sha256, rows, spans, boundary, checkpoint_pk
            )
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {partitions.TABLE} DETACH PARTITION {name}")
                if drop:
                    cursor.execute(f"DROP TABLE {name}")
            AuditDetachment.objects.create(
                month=month,
                partition=name,
                rows=rows,
                file_name=data_path.name,
                file_sha256=sha256,
                boundary=_as_json(boundary),
                checkpoint_pk=checkpoint_pk,
            )
    except BaseException:
        for path in (data_path, manifest_path):
            path.unlink(missing_ok=True)
        raise
    return Detached(name, rows, data_path, manifest_path, sha256, drop)


def _checks(
    name: str, low: datetime.datetime, high: datetime.datetime
) -> tuple[int, dict[int, tuple[int, int]]]:
    older = PaymentAudit.objects.filter(created_at__lt=low).count()
    if older:
        raise DetachRefused(
            f"{older:,} attached row(s) are older than {name}: detach the oldest month first"
        )
    ends = _chain_ends(name)
    signed, _ = checkpoint_latest_good()
    if ends and signed is None:
        raise DetachRefused(f"no signed checkpoint covers {name}: run audit_checkpoint first")
    checkpoint_pk = 0
    if signed is not None:
        for chain, (_, last) in sorted(ends.items()):
            covered = signed.heads.get(chain, (0, GENESIS_HASH))[0]
            if last > covered:
                raise DetachRefused(
                    f"{name} has rows newer than the last signed checkpoint ({signed.label}): "
                    f"chain {chain} reaches seq {last}, the checkpoint seq {covered}; run "
                    "audit_checkpoint first"
                )
        checkpoint_pk = (
            AuditCheckpoint.objects.filter(created_at=signed.created_at, signature=signed.signature)
            .values_list("pk", flat=True)
            .first()
            or 0
        )
    for chain, (_, last) in sorted(ends.items()):
        later = PaymentAudit.objects.filter(chain=chain, seq__lte=last, created_at__gte=high)
        if later.exists():
            raise DetachRefused(
                f"chain {chain} has a row up to seq {last} dated after {name} (written out of "
                "order at the month's end): the month cannot be cut there"
            )
    return checkpoint_pk, ends


def _check_spans(name: str, ends: dict[int, tuple[int, int]], spans: dict[int, ChainSpan]) -> None:
    """The export holds each chain's rows of the month without a gap."""
    for chain, span in sorted(spans.items()):
        if ends.get(chain) != (span.first_seq, span.last_seq):
            raise DetachRefused(f"{name} changed while it was exported (chain {chain})")
        if span.rows != span.last_seq - span.first_seq + 1:
            raise DetachRefused(
                f"chain {chain} has a gap in {name} (seq {span.first_seq}-{span.last_seq}, "
                f"{span.rows} rows): verify_audit_chain --full first"
            )
    if set(ends) != set(spans):
        raise DetachRefused(f"{name} changed while it was exported")


def _chain_ends(name: str) -> dict[int, tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT chain, min(seq), max(seq) FROM {name} GROUP BY chain")  # noqa: S608  # nosec B608
        return {chain: (first, last) for chain, first, last in cursor.fetchall()}


def _rows(low: datetime.datetime, high: datetime.datetime) -> Iterator[PaymentAudit]:
    rows = PaymentAudit.objects.filter(created_at__gte=low, created_at__lt=high)
    return rows.select_related("user").order_by("chain", "seq").iterator(chunk_size=2000)


def _export(
    name: str, low: datetime.datetime, high: datetime.datetime, path: Path
) -> tuple[str, dict[int, ChainSpan]]:
    digest = hashlib.sha256()
    spans: dict[int, ChainSpan] = {}

    def counted() -> Iterator[PaymentAudit]:
        for row in _rows(low, high):
            span = spans.get(row.chain)
            if span is None:
                span = spans[row.chain] = ChainSpan(row.seq, row.prev_hash, row.seq, row.row_hash)
            span.last_seq, span.last_hash = row.seq, row.row_hash
            span.rows += 1
            yield row

    filters = {"partition": name, "from": low.isoformat(), "to": high.isoformat()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for chunk in evidence.stream_evidence(
            (evidence.row_as_dict(row) for row in counted()), filters=filters
        ):
            data = chunk.encode()
            digest.update(data)
            handle.write(chunk)
    return digest.hexdigest(), spans


def _as_json(heads: Heads) -> dict[str, list[Any]]:
    return {str(chain): [seq, digest] for chain, (seq, digest) in sorted(heads.items())}


def _write_manifest(
    path: Path,
    name: str,
    month: datetime.date,
    data_path: Path,
    sha256: str,
    rows: int,
    spans: dict[int, ChainSpan],
    boundary: Heads,
    checkpoint_pk: int,
) -> None:
    document = {
        "format": MANIFEST_FORMAT,
        "partition": name,
        "month": month.isoformat()[:7],
        "file": data_path.name,
        "sha256": sha256,
        "rows": rows,
        "chains": {str(c): span.as_json() for c, span in sorted(spans.items())},
        "boundary": _as_json(boundary),
        "checkpoint": checkpoint_pk,
        "detached_at": timezone.now().isoformat(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(document, indent=2, sort_keys=True) + "\n")


def verify_export(manifest_path: Path) -> tuple[int, list[str]]:
    """(rows checked, problems) of an exported month, on its own: the file's sha256 and row
    count against the manifest, every row's hash and link (verify_evidence), each chain's rows
    without a gap, and their first and last seq and hashes as the manifest says."""
    try:
        manifest = read_manifest(manifest_path)
    except (OSError, ValueError) as exc:
        return 0, [f"cannot read {manifest_path}: {exc}"]
    data_path = manifest_path.parent / Path(manifest["file"]).name
    try:
        actual = file_sha256(data_path)
        with data_path.open(encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        return 0, [f"cannot read {data_path}: {exc}"]
    problems = []
    if actual != manifest["sha256"]:
        problems.append(f"{data_path.name}: sha256 {actual} is not the manifest's")
    checked, row_problems = evidence.verify_evidence(document)
    problems += row_problems
    if checked != manifest["rows"]:
        problems.append(f"{checked:,} rows in the file, {manifest['rows']:,} in the manifest")
    found: dict[int, ChainSpan] = {}
    for data in document.get("rows") or []:
        chain, seq = data.get("chain"), data.get("seq")
        span = found.get(chain)
        if span is None:
            found[chain] = ChainSpan(seq, data.get("prev_hash"), seq, data.get("row_hash"), 1)
            continue
        if seq != span.last_seq + 1:
            problems.append(f"chain {chain}: seq {span.last_seq + 1} missing before seq {seq}")
        span.last_seq, span.last_hash, span.rows = seq, data.get("row_hash"), span.rows + 1
    if found != manifest["chains"]:
        differ = sorted(set(found) ^ set(manifest["chains"])) or sorted(
            c for c in found if found[c] != manifest["chains"].get(c)
        )
        problems.append(f"chains {differ} do not match the manifest's first and last rows")
    for chain, span in manifest["chains"].items():
        if manifest["boundary"].get(chain) != (span.last_seq, span.last_hash):
            problems.append(f"chain {chain}: the manifest's boundary is not its last row")
    return checked, problems
