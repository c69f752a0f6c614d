"""Hash chaining of payment_audits.

Rows are spread over AUDIT_CHAIN_SHARDS independent chains by a hash of the changed object, so
two writers wait for each other only when their objects share a chain, never on one global
lock. A row's hash is sha256(previous row's hash + sha256(its content)), where the content is
every column that says what happened. Appending locks the chain's head row, moves it on by one
and inserts the row, in the caller's transaction (a rollback takes both back): on PostgreSQL
in one statement, elsewhere in three.

Editing any stored value breaks that row's hash; deleting rows breaks the next row's link or
leaves a gap in the sequence; cutting rows off a chain's end shows against a head kept outside
the database (`verify_audit_chain --expect`).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.db.models.sql import InsertQuery

from .models import AuditChainHead, PaymentAudit

GENESIS_HASH = "0" * 64


def chain_for(object_type: str, object_id: str) -> int:
    shards: int = settings.AUDIT_CHAIN_SHARDS
    return zlib.crc32(f"{object_type}:{object_id}".encode()) % shards


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def content_digest(row: PaymentAudit) -> str:
    """SHA-256 over every column that says what happened (not the chain position)."""
    return content_digest_of(
        row.id,
        row.user_id,
        row.action_type,
        row.object_type,
        row.object_id,
        row.before_state,
        row.after_state,
        row.ip_address,
        row.device_id,
        row.request_id,
        row.created_at,
    )


# The columns content_digest_of takes, in its order (verification reads them as tuples).
CONTENT_COLUMNS = (
    "id",
    "user_id",
    "action_type",
    "object_type",
    "object_id",
    "before_state",
    "after_state",
    "ip_address",
    "device_id",
    "request_id",
    "created_at",
)


def content_digest_of(
    row_id: Any,
    user_id: Any,
    action_type: str,
    object_type: str,
    object_id: str,
    before_state: Any,
    after_state: Any,
    ip_address: Any,
    device_id: Any,
    request_id: str,
    created_at: datetime,
) -> str:
    """content_digest from the column values, without a model instance."""
    content = content_json(
        str(row_id),
        user_id,
        action_type,
        object_type,
        object_id,
        canonical_json(before_state),
        canonical_json(after_state),
        ip_address,
        device_id,
        request_id,
        _timestamp(created_at),
    )
    return hashlib.sha256(content.encode()).hexdigest()


# json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True), built once.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
canonical_json = _ENCODER.encode
_string_json = encode_basestring_ascii
# The C encoder canonical_json runs, made once (encode() makes a new one on each call), without
# its guard against cycles: it only ever sees what a JSON parser made, which has none.
_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_parsed = (
    _make_encoder(
        None,
        _ENCODER.default,
        encode_basestring_ascii,
        None,
        _ENCODER.key_separator,
        _ENCODER.item_separator,
        True,
        False,
        True,
    )
    if _make_encoder
    else None
)
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def canonical_json_of_text(text: str | None) -> str:
    """canonical_json(json.loads(text)), "null" for None: a JSON column read as text, in the
    form the digest hashes. The parser and encoder are called directly, not through loads()
    and encode(), whose wrappers cost more than the work for a small object."""
    if text is None:
        return "null"
    if _encode_parsed is None:
        return canonical_json(json.loads(text))
    value, end = _scan_json(text, 0)
    if end != len(text):
        value = json.loads(text)  # trailing text: refused exactly as loads() refuses it
    return "".join(_encode_parsed(value, 0))


def _scalar_json(value: Any) -> str:
    if value is None:
        return "null"
    if value.__class__ is str:
        return _string_json(value)
    if value.__class__ is int:
        return int.__repr__(value)
    return canonical_json(value)


# {"action_type":{},"after_state":{},...}: the keys in sorted order, a "{}" for each value.
_content_format = (
    "{{" + ",".join(f'"{key}":{{}}' for key in sorted(CONTENT_COLUMNS)) + "}}"
).format


def content_json(
    row_id: str,
    user_id: Any,
    action_type: str,
    object_type: str,
    object_id: str,
    before_json: str,
    after_json: str,
    ip_address: Any,
    device_id: Any,
    request_id: str,
    created_at: str,
) -> str:
    """What content_digest hashes: canonical_json of the dict of CONTENT_COLUMNS (the id and
    the UTC time as text), here from the states already in canonical JSON. Filled into the
    keys in sorted order: the same text without building the dict and sorting it on every row
    (verification runs this for each of millions of rows)."""
    text = _string_json
    try:  # every stored row: text columns are str, user_id an int, device_id text or None
        return _content_format(
            text(action_type),
            after_json,
            before_json,
            text(created_at),
            "null" if device_id is None else text(device_id),
            text(row_id),
            text(ip_address),
            text(object_id),
            text(object_type),
            text(request_id),
            int.__repr__(user_id) if user_id.__class__ is int else _scalar_json(user_id),
        )
    except TypeError:  # a value of another type where text was expected
        value = _scalar_json
        return _content_format(
            value(action_type),
            after_json,
            before_json,
            value(created_at),
            value(device_id),
            value(row_id),
            value(ip_address),
            value(object_id),
            value(object_type),
            value(request_id),
            value(user_id),
        )


def link_digest(prev_hash: str, content_hash: str) -> str:
    """A row's hash: its content chained to the previous row's hash. PostgreSQL computes the
    same thing in SQL when appending: encode(sha256(convert_to(prev || content)), 'hex')."""
    return hashlib.sha256((prev_hash + content_hash).encode()).hexdigest()


def row_digest(row: PaymentAudit) -> str:
    return link_digest(row.prev_hash, content_digest(row))


def ensure_heads() -> None:
    existing = set(AuditChainHead.objects.values_list("chain", flat=True))
    AuditChainHead.objects.bulk_create(
        [
            AuditChainHead(chain=chain, seq=0, prev_hash=GENESIS_HASH, last_hash=GENESIS_HASH)
            for chain in range(settings.AUDIT_CHAIN_SHARDS)
            if chain not in existing
        ],
        ignore_conflicts=True,
    )


# One round trip on PostgreSQL: lock the chain's head, move it on by one row (the UPDATE's SET
# sees the old values, so prev_hash keeps the hash it had), and insert the row at that place.
# The change's django-auditlog entry, when given, is inserted by the same statement (a
# data-modifying WITH runs whether or not the rest reads it).
_PG_APPEND = """
WITH {log}head AS (
    UPDATE payment_audit_chain_heads
    SET seq = seq + 1,
        prev_hash = last_hash,
        last_hash = encode(sha256(convert_to(last_hash || %s, 'UTF8')), 'hex')
    WHERE chain = %s
    RETURNING chain, seq, prev_hash, last_hash
)
INSERT INTO payment_audits (id, user_id, action_type, object_type, object_id, before_state,
                            after_state, ip_address, device_id, request_id, created_at,
                            chain, seq, prev_hash, row_hash)
SELECT %s, %s, %s, %s, %s, %s, %s, %s::inet, %s, %s, %s,
       head.chain, head.seq, head.prev_hash, head.last_hash
FROM head
RETURNING seq, prev_hash, row_hash
"""


def _insert_sql(entry: models.Model) -> tuple[str, tuple[Any, ...]]:
    """The INSERT Django's save() would run for the unsaved `entry` (no RETURNING)."""
    meta = entry._meta
    fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
    query = InsertQuery(type(entry))
    query.insert_values(fields, [entry])
    ((sql, params),) = query.get_compiler(connection=connection).as_sql()
    return sql, tuple(params)


def _append_postgresql(row: PaymentAudit, content_hash: str, log_entry: Any = None) -> bool:
    from psycopg.types.json import Jsonb

    log_sql, log_params = ("", ()) if log_entry is None else _insert_sql(log_entry)
    params = (
        *log_params,
        content_hash,
        row.chain,
        row.id,
        row.user_id,
        row.action_type,
        row.object_type,
        row.object_id,
        None if row.before_state is None else Jsonb(row.before_state),
        None if row.after_state is None else Jsonb(row.after_state),
        row.ip_address,
        row.device_id,
        row.request_id,
        row.created_at,
    )
    sql = _PG_APPEND.format(log=f"log AS ({log_sql}),\n" if log_sql else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        placed = cursor.fetchone()
    if placed is None:
        return False
    row.seq, row.prev_hash, row.row_hash = placed
    return True


def _append_portable(row: PaymentAudit, content_hash: str, log_entry: Any = None) -> bool:
    if log_entry is not None:
        log_entry.save(force_insert=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE payment_audit_chain_heads SET seq = seq + 1, prev_hash = last_hash "
            "WHERE chain = %s RETURNING seq, prev_hash",
            [row.chain],
        )
        claimed = cursor.fetchone()
    if claimed is None:
        return False
    row.seq, row.prev_hash = claimed
    row.row_hash = link_digest(row.prev_hash, content_hash)
    row.save(force_insert=True)
    AuditChainHead.objects.filter(chain=row.chain).update(last_hash=row.row_hash)
    return True


def append(row: PaymentAudit, *, log_entry: models.Model | None = None) -> PaymentAudit:
    """Give `row` its place in its chain and insert it, with the change's unsaved
    django-auditlog `log_entry` if given (on PostgreSQL in the same statement). Call inside the
    change's transaction."""
    row.chain = chain_for(row.object_type, row.object_id)
    gathered = _gathered.get()
    if gathered is not None:
        gathered.append((row, log_entry))
        return row
    content_hash = content_digest(row)
    write = _append_postgresql if connection.vendor == "postgresql" else _append_portable
    if not write(row, content_hash, log_entry):
        # A chain added by raising AUDIT_CHAIN_SHARDS since the last migrate. The log entry
        # is in already (a data-modifying WITH runs even when the head matched no row).
        ensure_heads()
        write(row, content_hash, None)
    return row


# The rows append() gathers inside appends_gathered(), with their change-log entries.
_gathered: ContextVar[list[tuple[PaymentAudit, models.Model | None]] | None] = ContextVar(
    "audit_appends_gathered", default=None
)


@contextmanager
def appends_gathered() -> Iterator[None]:
    """Inside the block, append() gathers its rows; when the block ends without an exception
    they are appended, each chain's in the order they came, in three statements however many
    there are (their change-log entries; the heads of their chains, locked in chain order; the
    heads moved on and the rows inserted). Each row is still one row of its chain with the
    same hash, computed here instead of in SQL. An exception drops the gathered rows: the
    caller rolls back the changes they describe. PostgreSQL only; elsewhere appends at once."""
    if connection.vendor != "postgresql":
        yield
        return
    rows: list[tuple[PaymentAudit, models.Model | None]] = []
    token = _gathered.set(rows)
    try:
        yield
    finally:
        _gathered.reset(token)
    if rows:
        _append_gathered(rows)


def _locked_heads(chains: list[int]) -> dict[int, tuple[int, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT chain, seq, prev_hash, last_hash FROM payment_audit_chain_heads "
            "WHERE chain = ANY(%s) ORDER BY chain FOR UPDATE",
            [chains],
        )
        return {chain: (seq, prev, last) for chain, seq, prev, last in cursor.fetchall()}


_ROW_COLUMNS = (*CONTENT_COLUMNS, "chain", "seq", "prev_hash", "row_hash")


def _append_gathered(rows: list[tuple[PaymentAudit, models.Model | None]]) -> None:
    from psycopg.types.json import Jsonb

    entries = [entry for _, entry in rows if entry is not None]
    if entries:
        type(entries[0])._default_manager.bulk_create(entries)
    chains = sorted({row.chain for row, _ in rows})
    heads = _locked_heads(chains)
    if len(heads) < len(chains):
        ensure_heads()  # a chain added by raising AUDIT_CHAIN_SHARDS since the last migrate
        heads = _locked_heads(chains)
    values: list[str] = []
    row_params: list[Any] = []
    for row, _ in rows:
        seq, _, last_hash = heads[row.chain]
        row.seq, row.prev_hash = seq + 1, last_hash
        row.row_hash = link_digest(last_hash, content_digest(row))
        heads[row.chain] = (row.seq, row.prev_hash, row.row_hash)
        values.append("(%s, %s, %s, %s, %s, %s, %s, %s::inet, %s, %s, %s, %s, %s, %s, %s)")
        for column in _ROW_COLUMNS:
            value = getattr(row, column)
            row_params.append(
                Jsonb(value) if column.endswith("_state") and value is not None else value
            )
    moved: list[str] = []
    head_params: list[Any] = []
    for chain in chains:
        moved.append("(%s, %s, %s, %s)")
        head_params.extend([chain, *heads[chain]])
    # Table names are constants and every value is a bound parameter.
    sql = (
        "WITH moved AS (UPDATE payment_audit_chain_heads AS head "  # noqa: S608  # nosec B608
        "SET seq = v.seq, prev_hash = v.prev_hash, last_hash = v.last_hash "
        f"FROM (VALUES {', '.join(moved)}) AS v(chain, seq, prev_hash, last_hash) "
        "WHERE head.chain = v.chain::smallint) "
        f"INSERT INTO payment_audits ({', '.join(_ROW_COLUMNS)}) VALUES {', '.join(values)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*head_params, *row_params])


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
