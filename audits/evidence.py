"""Evidence files: a filtered slice of payment_audits as JSON that carries each row's hashes, so
that it can be checked offline (`manage.py verify_audit_chain --file evidence.json`)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

from django.utils import timezone

from .chain import CONTENT_COLUMNS, row_digest
from .models import AuditChainHead, PaymentAudit

FORMAT = "backoffice-audit-evidence/1"
# The chain position, then the content the row hash covers (CONTENT_COLUMNS begins with "id").
FIELDS = ["id", "chain", "seq", "prev_hash", "row_hash", *CONTENT_COLUMNS[1:]]


# The columns an evidence row is made of, read as plain values (no model instance per row).
COLUMNS = [*FIELDS, "user__username"]
# Rows are joined into one piece per this many: one write per piece, not per row.
ROWS_PER_PIECE = 500


def _utc_iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="microseconds")


def row_as_dict(row: PaymentAudit) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in FIELDS}
    data["id"] = str(row.id)
    data["created_at"] = _utc_iso(row.created_at)
    data["username"] = row.user.username
    return data


def values_as_dicts(rows: Iterable[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    """Rows of `queryset.values_list(*COLUMNS)` as row_as_dict makes them of instances."""
    for values in rows:
        data = dict(zip(FIELDS, values, strict=False))
        data["id"] = str(data["id"])
        data["created_at"] = _utc_iso(data["created_at"])
        data["username"] = values[-1]
        yield data


def stream_evidence(rows: Iterable[dict[str, Any]], *, filters: dict[str, Any]) -> Iterator[str]:
    """The evidence file of `rows` (row_as_dict's dicts), in pieces."""
    heads = {str(h.chain): [h.seq, h.last_hash] for h in AuditChainHead.objects.all()}
    header = {
        "format": FORMAT,
        "exported_at": timezone.now().isoformat(),
        "filters": {k: str(v) for k, v in filters.items()},
        "chain_heads": heads,
    }
    # The rows are streamed into the header's JSON object; json.dumps(..., sort_keys=True)
    # would build an encoder per row.
    encode = json.JSONEncoder(sort_keys=True).encode
    yield json.dumps(header)[:-1] + ', "rows": ['
    piece: list[str] = []
    separator = "\n"
    for data in rows:
        piece.append(separator + encode(data))
        separator = ",\n"
        if len(piece) == ROWS_PER_PIECE:
            yield "".join(piece)
            piece = []
    if piece:
        yield "".join(piece)
    yield "\n]}\n"


def verify_evidence(document: dict[str, Any]) -> tuple[int, list[str]]:
    """(rows checked, problems). Each row's hash must match its content and its previous
    hash; rows of one chain with consecutive numbers must link to each other."""
    if document.get("format") != FORMAT:
        return 0, [f"not an evidence file ({FORMAT!r} expected)"]
    problems: list[str] = []
    rows = document.get("rows") or []
    by_position: dict[tuple[int, int], dict[str, Any]] = {}
    for data in rows:
        row = SimpleNamespace(**{k: data.get(k) for k in FIELDS})
        try:
            row.created_at = datetime.datetime.fromisoformat(data["created_at"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"row {data.get('id')}: unreadable created_at")
            continue
        if row_digest(row) != data.get("row_hash"):  # type: ignore[arg-type]
            problems.append(
                f"row {data.get('id')} (chain {data.get('chain')} seq "
                f"{data.get('seq')}): content does not match its hash (altered)"
            )
        by_position[(data.get("chain"), data.get("seq"))] = data
    for (chain, seq), data in sorted(by_position.items()):
        previous = by_position.get((chain, seq - 1)) if isinstance(seq, int) else None
        if previous is not None and previous.get("row_hash") != data.get("prev_hash"):
            problems.append(
                f"row {data.get('id')} (chain {chain} seq {seq}) does not link to the row before it"
            )
    return len(rows), problems
