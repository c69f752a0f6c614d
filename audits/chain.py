"""Hash chaining of payment_audits.

Rows are spread over AUDIT_CHAIN_SHARDS independent chains by a hash of the changed object, so
two writers wait for each other only when their objects share a chain, never on one global
lock. Appending locks the chain's head row (one UPDATE ... RETURNING that also claims the next
sequence number), hashes the new row over its content and the previous row's hash, inserts it
and moves the head. All of it happens in the caller's transaction: a rollback takes the row and
the head move with it.

A row's hash covers every column, so editing any stored value breaks it; deleting rows breaks
the next row's link, and cutting rows off a chain's end shows against a head kept outside the
database (`verify_audit_chain --expect`).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection

from .models import AuditChainHead, PaymentAudit

GENESIS_HASH = "0" * 64


def chain_for(object_type: str, object_id: str) -> int:
    return zlib.crc32(f"{object_type}:{object_id}".encode()) % settings.AUDIT_CHAIN_SHARDS


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def row_digest(row: PaymentAudit) -> str:
    content: dict[str, Any] = {
        "id": str(row.id),
        "chain": row.chain,
        "seq": row.seq,
        "prev_hash": row.prev_hash,
        "user_id": row.user_id,
        "action_type": row.action_type,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "before_state": row.before_state,
        "after_state": row.after_state,
        "ip_address": row.ip_address,
        "device_id": row.device_id,
        "request_id": row.request_id,
        "created_at": _timestamp(row.created_at),
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def ensure_heads() -> None:
    existing = set(AuditChainHead.objects.values_list("chain", flat=True))
    AuditChainHead.objects.bulk_create(
        [
            AuditChainHead(chain=chain, seq=0, last_hash=GENESIS_HASH)
            for chain in range(settings.AUDIT_CHAIN_SHARDS)
            if chain not in existing
        ],
        ignore_conflicts=True,
    )


def _claim_next(chain: int) -> tuple[int, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE payment_audit_chain_heads SET seq = seq + 1 WHERE chain = %s "
            "RETURNING seq, last_hash",
            [chain],
        )
        claimed = cursor.fetchone()
    if claimed is None:  # a chain added by raising AUDIT_CHAIN_SHARDS since the last migrate
        ensure_heads()
        return _claim_next(chain)
    return claimed[0], claimed[1]


def append(row: PaymentAudit) -> PaymentAudit:
    """Give `row` its place in its chain and insert it. Call inside the change's transaction."""
    row.chain = chain_for(row.object_type, row.object_id)
    row.seq, row.prev_hash = _claim_next(row.chain)
    row.row_hash = row_digest(row)
    row.save(force_insert=True)
    AuditChainHead.objects.filter(chain=row.chain).update(last_hash=row.row_hash)
    return row


@dataclass
class ChainProblem:
    chain: int
    seq: int
    row_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row_id} " if self.row_id else ""
        return f"chain {self.chain} seq {self.seq}: {where}{self.message}"


def parse_head(value: str) -> tuple[int, int, str]:
    """A kept head as printed by verify_audit_chain: CHAIN:SEQ:HASH."""
    try:
        chain, seq, digest = value.split(":")
        return int(chain), int(seq), digest
    except ValueError as exc:
        raise ValueError(f"'{value}' is not CHAIN:SEQ:HASH") from exc
