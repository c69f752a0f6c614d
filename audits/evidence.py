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


def row_as_dict(row: PaymentAudit) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in FIELDS}
    data["id"] = str(row.id)
    data["created_at"] = row.created_at.astimezone(datetime.UTC).isoformat(timespec="microseconds")
    data["username"] = row.user.username
    return data


def stream_evidence(rows: Iterable[PaymentAudit], *, filters: dict[str, Any]) -> Iterator[str]:
    heads = {str(h.chain): [h.seq, h.last_hash] for h in AuditChainHead.objects.all()}
    header = {
        "format": FORMAT,
        "exported_at": timezone.now().isoformat(),
        "filters": {k: str(v) for k, v in filters.items()},
        "chain_heads": heads,
    }
    # The rows are streamed one by one into the header's JSON object.
    yield json.dumps(header)[:-1] + ', "rows": ['
    first = True
    for row in rows:
        yield ("" if first else ",") + "\n" + json.dumps(row_as_dict(row), sort_keys=True)
        first = False
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
