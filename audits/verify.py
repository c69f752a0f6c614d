"""Walks the payment_audits hash chains and reports the first row that does not hold."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from config.querying import streamed

from .chain import GENESIS_HASH, ChainProblem, row_digest
from .models import AuditChainHead, ChainVerification, PaymentAudit

Progress = Callable[[int, int], None]


@dataclass
class ChainReport:
    rows_checked: int = 0
    heads: dict[int, tuple[int, str]] = field(default_factory=dict)  # chain -> (seq, hash)
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_rows(
    chain: int,
    rows: Iterable[PaymentAudit],
    report: ChainReport,
    progress: Progress | None = None,
    total: int = 0,
) -> None:
    expected_seq, prev_hash = 1, GENESIS_HASH
    for row in rows:
        report.rows_checked += 1
        if progress and report.rows_checked % 10_000 == 0:
            progress(report.rows_checked, total)
        if row.seq != expected_seq:
            report.problems.append(
                ChainProblem(
                    chain, expected_seq, None, f"missing; next row present is seq {row.seq}"
                )
            )
            return
        if row.prev_hash != prev_hash:
            report.problems.append(
                ChainProblem(chain, row.seq, str(row.id), "does not link to the previous row")
            )
            return
        if row_digest(row) != row.row_hash:
            report.problems.append(
                ChainProblem(
                    chain, row.seq, str(row.id), "content does not match its hash (altered)"
                )
            )
            return
        expected_seq, prev_hash = row.seq + 1, row.row_hash
    report.heads[chain] = (expected_seq - 1, prev_hash)


def verify_database(progress: Progress | None = None) -> ChainReport:
    report = ChainReport()
    total = PaymentAudit.objects.count()
    chains = sorted(
        set(AuditChainHead.objects.values_list("chain", flat=True))
        | set(PaymentAudit.objects.values_list("chain", flat=True).distinct())
    )
    for chain in chains:
        rows = streamed(PaymentAudit.objects.filter(chain=chain).order_by("seq"))
        verify_rows(chain, rows, report, progress, total)
    stored_heads = {h.chain: (h.seq, h.last_hash) for h in AuditChainHead.objects.all()}
    for chain, (seq, digest) in report.heads.items():
        stored = stored_heads.get(chain, (0, GENESIS_HASH))
        if stored != (seq, digest):
            report.problems.append(
                ChainProblem(
                    chain,
                    seq,
                    None,
                    f"the stored chain head says seq {stored[0]}; rows end at seq {seq}",
                )
            )
    return report


def check_expected_heads(report: ChainReport, expected: list[tuple[int, int, str]]) -> None:
    """Compare with heads kept outside the database: rows cut off a chain's end show here."""
    for chain, seq, digest in expected:
        actual_seq, _ = report.heads.get(chain, (0, GENESIS_HASH))
        if actual_seq < seq:
            report.problems.append(
                ChainProblem(
                    chain,
                    seq,
                    None,
                    f"kept head is seq {seq} but the chain ends at seq {actual_seq}: "
                    f"{seq - actual_seq} row(s) missing from the end",
                )
            )
            continue
        if seq == 0:
            if digest != GENESIS_HASH:
                report.problems.append(ChainProblem(chain, 0, None, "kept head is malformed"))
            continue
        row = PaymentAudit.objects.filter(chain=chain, seq=seq).only("row_hash").first()
        if row is None or row.row_hash != digest:
            report.problems.append(
                ChainProblem(
                    chain, seq, str(row.id) if row else None, "does not match the kept head's hash"
                )
            )


def verification_record(report: ChainReport, *, source: str) -> ChainVerification:
    """Keep the outcome of a run: /metrics reports the newest one's age and result."""
    return ChainVerification.objects.create(
        source=source,
        ok=report.ok,
        rows_checked=report.rows_checked,
        chains=len(report.heads),
        first_problem=str(report.problems[0]) if report.problems else "",
    )
