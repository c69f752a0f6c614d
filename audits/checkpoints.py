"""Signed checkpoints of the payment_audits hash chains.

Every hour (beat's `audit-checkpoint`) the rows appended since the last good checkpoint are
verified up to the chain heads read now, and those heads are signed with Ed25519
(`AUDIT_CHECKPOINT_SIGNING_KEY`) and stored as an append-only AuditCheckpoint row. A checkpoint
is only ever made over verified rows, so `verify_audit_chain` (incremental, the default) starts
from the newest checkpoint whose signature holds and reads only the rows after it.

A checkpoint is also written as a file to `AUDIT_CHECKPOINT_EXPORT_DIR`, a place the database
administrator cannot write: `verify_audit_chain --checkpoint FILE` verifies from such a file,
so a checkpoint table rewritten together with the rows (by someone holding the database) is no
way around it, as long as the private key is not theirs too.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .boundary import floor_from, starts_above_floor
from .chain import GENESIS_HASH
from .crypto import signing
from .models import AuditChainHead, AuditCheckpoint
from .verify import ChainReport, Progress, verify_database

FORMAT = "backoffice-audit-checkpoint/1"


class CheckpointRefused(Exception):
    """The rows since the last checkpoint do not verify: nothing is signed."""


@dataclass(frozen=True)
class SignedHeads:
    """What a checkpoint signs, whether read from the table or from an exported file."""

    created_at: datetime.datetime
    heads: dict[int, tuple[int, str]]
    rows: int
    key_id: str
    signature: str
    label: str

    def starts(self) -> dict[int, tuple[int, str]]:
        return dict(self.heads)


def message(created_at: datetime.datetime, heads: dict[int, tuple[int, str]], rows: int) -> bytes:
    """The bytes signed: canonical JSON of the format, time, heads and row count."""
    document = {
        "format": FORMAT,
        "created_at": created_at.astimezone(datetime.UTC).isoformat(timespec="microseconds"),
        "heads": {str(chain): [seq, digest] for chain, (seq, digest) in sorted(heads.items())},
        "rows": rows,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _heads_of(checkpoint: AuditCheckpoint) -> dict[int, tuple[int, str]]:
    return {
        int(chain): (int(seq), str(digest)) for chain, (seq, digest) in checkpoint.heads.items()
    }


def signed_heads(checkpoint: AuditCheckpoint) -> SignedHeads:
    return SignedHeads(
        checkpoint.created_at,
        _heads_of(checkpoint),
        checkpoint.rows,
        checkpoint.key_id,
        checkpoint.signature,
        f"checkpoint {checkpoint.pk} of {checkpoint.created_at:%Y-%m-%d %H:%M:%S} UTC",
    )


def check_signature(signed: SignedHeads) -> None:
    """Raise signing.SignatureRefused unless a configured public key verifies it."""
    signing.verify(
        settings.AUDIT_CHECKPOINT_PUBLIC_KEYS,
        signed.key_id,
        signed.signature,
        message(signed.created_at, signed.heads, signed.rows),
    )


def checkpoint_latest_good() -> tuple[SignedHeads | None, list[str]]:
    """The newest checkpoint whose signature holds, and a message for each newer one refused."""
    refused: list[str] = []
    for checkpoint in AuditCheckpoint.objects.order_by("-created_at", "-id").iterator():
        signed = signed_heads(checkpoint)
        try:
            check_signature(signed)
        except signing.SignatureRefused as exc:
            refused.append(f"{signed.label} refused: {exc}")
            continue
        return signed, refused
    return None, refused


def verify_from(
    signed: SignedHeads | None,
    progress: Progress | None = None,
    workers: int | None = None,
    *,
    manifest: Path | None = None,
) -> ChainReport:
    """Verify the rows after `signed`'s heads (every row when None), none below the boundary of
    months detached to cold storage (recorded in the database, or `manifest`'s)."""
    floor, floor_label = floor_from(manifest)
    starts, unanchored, problems = starts_above_floor(
        signed.starts() if signed else {}, floor, signed=signed is not None
    )
    report = verify_database(
        progress, starts=starts or None, workers=workers, unanchored=unanchored
    )
    report.problems[:0] = problems
    report.started_from = signed.label if signed else floor_label or "genesis"
    return report


def verify_incremental(
    progress: Progress | None = None, workers: int | None = None
) -> tuple[ChainReport, list[str]]:
    """Verify from the last good checkpoint; (report, refused checkpoints' messages)."""
    signed, refused = checkpoint_latest_good()
    return verify_from(signed, progress, workers), refused


def checkpoint_create(
    *, progress: Progress | None = None, workers: int | None = None
) -> tuple[AuditCheckpoint, ChainReport]:
    """Verify the rows since the last good checkpoint, then sign and store the heads reached.
    Raises CheckpointRefused (and signs nothing) when a row does not hold or a newer checkpoint
    is forged."""
    report, refused = verify_incremental(progress, workers)
    problems = refused + [str(problem) for problem in report.problems]
    if problems:
        raise CheckpointRefused("; ".join(problems))
    heads = dict(report.heads)
    for chain in AuditChainHead.objects.values_list("chain", flat=True):
        heads.setdefault(chain, (0, GENESIS_HASH))
    created_at = timezone.now()
    rows = sum(seq for seq, _ in heads.values())
    key_id, signature = signing.sign(
        settings.AUDIT_CHECKPOINT_SIGNING_KEY, message(created_at, heads, rows)
    )
    with transaction.atomic():
        checkpoint = AuditCheckpoint.objects.create(
            created_at=created_at,
            heads={str(chain): [seq, digest] for chain, (seq, digest) in sorted(heads.items())},
            rows=rows,
            key_id=key_id,
            signature=signature,
        )
    return checkpoint, report


def as_document(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "id": checkpoint.pk,
        "created_at": checkpoint.created_at.astimezone(datetime.UTC).isoformat(
            timespec="microseconds"
        ),
        "heads": checkpoint.heads,
        "rows": checkpoint.rows,
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


def file_name(checkpoint: AuditCheckpoint) -> str:
    stamp = checkpoint.created_at.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"checkpoint-{stamp}-{checkpoint.pk}.json"


def checkpoints_export(directory: Path) -> Iterator[Path]:
    """Write each checkpoint not yet in `directory` as a read-only file; never overwrite one.
    Yields the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    for checkpoint in AuditCheckpoint.objects.order_by("created_at", "id").iterator():
        path = directory / file_name(checkpoint)
        if path.exists():
            continue
        data = json.dumps(as_document(checkpoint), indent=2, sort_keys=True) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        yield path


def read_file(path: str) -> SignedHeads:
    """A checkpoint exported as a file. Raises ValueError when it is not one."""
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a checkpoint file ({FORMAT!r} expected)")
    try:
        heads = {
            int(chain): (int(seq), str(digest))
            for chain, (seq, digest) in document["heads"].items()
        }
        return SignedHeads(
            datetime.datetime.fromisoformat(document["created_at"]),
            heads,
            int(document["rows"]),
            str(document["key_id"]),
            str(document["signature"]),
            f"checkpoint file {path}",
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed checkpoint file: {exc}") from exc
