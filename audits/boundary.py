"""Where verification of the rows still attached starts when months were detached to cold
storage (audits/cold_storage.py): each chain's last detached row, the boundary, read from the
newest AuditDetachment or from an exported manifest (a file the database administrator cannot
rewrite)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chain import GENESIS_HASH, ChainProblem
from .models import AuditDetachment

MANIFEST_FORMAT = "backoffice-audit-partition-manifest/1"

Heads = dict[int, tuple[int, str]]


@dataclass
class ChainSpan:
    first_seq: int
    first_prev_hash: str
    last_seq: int
    last_hash: str
    rows: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "first_seq": self.first_seq,
            "first_prev_hash": self.first_prev_hash,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "rows": self.rows,
        }


def boundary_recorded() -> tuple[Heads, str]:
    """Every chain's last row detached so far (from the newest AuditDetachment), and a label."""
    latest = AuditDetachment.objects.order_by("-month").first()
    if latest is None:
        return {}, ""
    return _heads(latest.boundary), f"the detach boundary of {latest.partition} (database record)"


def _heads(document: Any) -> Heads:
    return {int(chain): (int(seq), str(digest)) for chain, (seq, digest) in document.items()}


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest written by partition_detach. Raises ValueError when it is not one."""
    with path.open(encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"not a partition manifest ({MANIFEST_FORMAT!r} expected)")
    try:
        document["boundary"] = _heads(document["boundary"])
        document["chains"] = {int(c): ChainSpan(**span) for c, span in document["chains"].items()}
        str(document["file"]), str(document["sha256"]), int(document["rows"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed partition manifest: {exc}") from exc
    return document


def floor_from(manifest_path: Path | None) -> tuple[Heads, str]:
    """Where verification of the attached rows starts at the latest: an exported manifest's
    boundary when given, else the one recorded in the database (empty: nothing detached)."""
    if manifest_path is None:
        return boundary_recorded()
    manifest = read_manifest(manifest_path)
    return manifest["boundary"], f"the detach boundary in {manifest_path}"


def starts_above_floor(
    starts: Heads, floor: Heads, *, signed: bool
) -> tuple[Heads, frozenset[int], list[ChainProblem]]:
    """Verification starts: `starts` (a signed checkpoint's heads, or genesis), moved up to
    `floor` where rows below it were detached. The floor only replaces what it covers: a signed
    checkpoint behind it, or a different hash at the same seq, is a problem (a forged record)."""
    moved, unanchored, problems = dict(starts), set(), []
    for chain, (seq, digest) in sorted(floor.items()):
        start_seq, start_hash = starts.get(chain, (0, GENESIS_HASH))
        if signed and seq > start_seq:
            problems.append(
                ChainProblem(
                    chain,
                    seq,
                    None,
                    f"detach boundary beyond the signed checkpoint's seq {start_seq}",
                )
            )
        elif seq == start_seq and start_seq > 0 and digest != start_hash:
            problems.append(
                ChainProblem(chain, seq, None, "detach boundary does not match the checkpoint")
            )
        elif seq >= start_seq:
            moved[chain] = (seq, digest)
            unanchored.add(chain)
    return moved, frozenset(unanchored), problems
