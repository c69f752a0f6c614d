"""Walks the payment_audits hash chains and reports the first row that does not hold.

Each chain is verified from a start (genesis, or the head a signed checkpoint holds) up to the
head read when verification began: rows appended meanwhile are left to the next run. Chains
are independent, so on PostgreSQL they are verified in parallel, one process (and database
connection) per worker; inside a transaction, whose rows no other connection could see, and on
SQLite they are verified one after another on this connection.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, connections

from .chain import (
    CONTENT_COLUMNS,
    GENESIS_HASH,
    ChainProblem,
    canonical_json_of_text,
    content_digest_of,
    content_json,
    link_digest,
)
from .models import AuditChainHead, ChainVerification, PaymentAudit

Progress = Callable[[int, int], None]

# Rows fetched per query: keyset pages over (chain, seq), the unique index.
BATCH = 5000
_COLUMNS = ("seq", "prev_hash", "row_hash", *CONTENT_COLUMNS)
_ID = 3  # the position of "id" in _COLUMNS
_sha256 = hashlib.sha256


@dataclass
class ChainReport:
    rows_checked: int = 0
    heads: dict[int, tuple[int, str]] = field(default_factory=dict)  # chain -> (seq, hash)
    problems: list[ChainProblem] = field(default_factory=list)
    started_from: str = "genesis"

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ChainResult:
    chain: int
    rows_checked: int
    head: tuple[int, str]
    problem: ChainProblem | None = None


def _pages_portable(chain: int, after_seq: int, until_seq: int) -> Iterator[list[tuple[Any, ...]]]:
    last = after_seq
    while last < until_seq:
        page = list(
            PaymentAudit.objects.filter(chain=chain, seq__gt=last, seq__lte=until_seq)
            .order_by("seq")
            .values_list(*_COLUMNS)[:BATCH]
        )
        if not page:
            return
        yield page
        last = page[-1][0]


def _digest_portable(values: tuple[Any, ...]) -> str:
    return content_digest_of(*values[3:])


# PostgreSQL: the columns as the digest writes them (id and time as text, JSON as text to
# parse once), without model fields' converters: half the CPU per row of the ORM's tuples.
_PG_PAGE = """
SELECT seq, prev_hash, row_hash, id::text, user_id, action_type, object_type, object_id,
       before_state::text, after_state::text, ip_address, device_id, request_id,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
FROM payment_audits
WHERE chain = %s AND seq > %s AND seq <= %s
ORDER BY seq
LIMIT %s
"""


def _pages_postgresql(
    chain: int, after_seq: int, until_seq: int
) -> Iterator[list[tuple[Any, ...]]]:
    """_PG_PAGE's pages. A thread reads the next page while the caller checks this one, so
    PostgreSQL's work and the transfer overlap the hashing (psycopg waits without the GIL);
    the cursor is used by one thread at a time."""
    if after_seq >= until_seq:
        return
    with connection.cursor() as cursor, ThreadPoolExecutor(1) as reader:

        def read(after: int) -> list[tuple[Any, ...]]:
            cursor.execute(_PG_PAGE, [chain, after, until_seq, BATCH])
            return cursor.fetchall()

        pending: Future[list[tuple[Any, ...]]] | None = reader.submit(read, after_seq)
        while pending is not None:
            page = pending.result()
            if not page:
                return
            last = page[-1][0]
            # A short page is the last one: no query that could only come back empty.
            more = len(page) == BATCH and last < until_seq
            pending = reader.submit(read, last) if more else None
            yield page


def _digest_postgresql(values: tuple[Any, ...]) -> str:
    """content_digest_of, from _PG_PAGE's text columns (the same canonical JSON)."""
    _, _, _, row_id, user_id, action, otype, oid, before, after, ip, device, request, at = values
    content = content_json(
        row_id,
        user_id,
        action,
        otype,
        oid,
        canonical_json_of_text(before),
        canonical_json_of_text(after),
        ip,
        device,
        request,
        at,
    )
    return _sha256(content.encode()).hexdigest()


def _reader() -> tuple[Callable[..., Iterator[list[tuple[Any, ...]]]], Callable[..., str]]:
    if connection.vendor == "postgresql":
        return _pages_postgresql, _digest_postgresql
    return _pages_portable, _digest_portable


def verify_chain(chain: int, start: tuple[int, str], until: tuple[int, str]) -> ChainResult:
    """Verify `chain` from `start` (seq, hash: genesis or a checkpoint's head) up to `until`
    (the head read before verifying). The row at a non-zero start is checked too."""
    start_seq, prev_hash = start
    pages, digest = _reader()
    result = ChainResult(chain, 0, (start_seq, prev_hash))
    if start_seq > 0:
        anchor = next((page[0] for page in pages(chain, start_seq - 1, start_seq)), None)
        if (
            anchor is None
            or anchor[2] != prev_hash
            or link_digest(anchor[1], digest(anchor)) != anchor[2]
        ):
            what = "is missing" if anchor is None else "does not match the checkpoint"
            result.problem = ChainProblem(
                chain, start_seq, str(anchor[_ID]) if anchor else None, f"{what} (altered)"
            )
            return result
        result.rows_checked += 1
    expected = start_seq + 1
    for page in pages(chain, start_seq, until[0]):
        for values in page:
            seq, row_prev, row_hash = values[0], values[1], values[2]
            if seq != expected:
                result.problem = ChainProblem(
                    chain, expected, None, f"missing; next row present is seq {seq}"
                )
                return result
            if row_prev != prev_hash:
                result.problem = ChainProblem(
                    chain, seq, str(values[_ID]), "does not link to the previous row"
                )
                return result
            if link_digest(prev_hash, digest(values)) != row_hash:
                result.problem = ChainProblem(
                    chain, seq, str(values[_ID]), "content does not match its hash (altered)"
                )
                return result
            result.rows_checked += 1
            expected, prev_hash = seq + 1, row_hash
        result.head = (page[-1][0], page[-1][2])
    if result.head != until:
        result.problem = ChainProblem(
            chain,
            result.head[0],
            None,
            f"the stored chain head says seq {until[0]}; rows end at seq {result.head[0]}",
        )
    return result


def _verify_in_worker(chain: int, start: tuple[int, str], until: tuple[int, str]) -> ChainResult:
    try:
        return verify_chain(chain, start, until)
    finally:
        connections.close_all()


def default_workers() -> int:
    """Processes for a verification: one per core on PostgreSQL outside a transaction."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return 1
    return os.cpu_count() or 1


def verify_database(
    progress: Progress | None = None,
    *,
    starts: dict[int, tuple[int, str]] | None = None,
    workers: int | None = None,
) -> ChainReport:
    """Verify every chain from `starts` (chain -> (seq, hash); genesis where absent) up to the
    heads stored now. `workers` > 1 verifies chains in parallel processes (PostgreSQL, outside
    a transaction only: other connections could not see its rows)."""
    report = ChainReport()
    starts = starts or {}
    heads = {h.chain: (h.seq, h.last_hash) for h in AuditChainHead.objects.all()}
    chains = set(heads) | set(starts)
    if not starts:
        # From genesis every row is read anyway: rows in a chain without a head show too.
        chains |= _chains_with_rows()
    jobs = [
        (chain, starts.get(chain, (0, GENESIS_HASH)), heads.get(chain, (0, GENESIS_HASH)))
        for chain in sorted(chains)
    ]
    total = sum(max(until[0] - start[0], 0) for _, start, until in jobs)
    workers = min(workers or default_workers(), max(len(jobs), 1))
    if workers > 1 and (connection.vendor != "postgresql" or connection.in_atomic_block):
        workers = 1
    results: list[ChainResult] = []
    if workers == 1:
        for job in jobs:
            results.append(verify_chain(*job))
            report.rows_checked += results[-1].rows_checked
            if progress:
                progress(report.rows_checked, total)
    else:
        connections.close_all()  # each forked worker opens its own connection
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_verify_in_worker, *job) for job in jobs]
            for future in as_completed(futures):
                results.append(future.result())
                report.rows_checked += results[-1].rows_checked
                if progress:
                    progress(report.rows_checked, total)
    for result in sorted(results, key=lambda r: r.chain):
        report.heads[result.chain] = result.head
        if result.problem:
            report.problems.append(result.problem)
    _check_nothing_beyond_heads(report)
    return report


# A loose index scan over (chain, seq): one index probe per chain, not a scan of every row.
_PG_CHAINS = """
WITH RECURSIVE found AS (
    SELECT min(chain) AS chain FROM payment_audits
    UNION ALL
    SELECT (SELECT min(chain) FROM payment_audits WHERE chain > found.chain)
    FROM found WHERE found.chain IS NOT NULL
)
SELECT chain FROM found WHERE chain IS NOT NULL
"""


def _chains_with_rows() -> set[int]:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_PG_CHAINS)
            return {chain for (chain,) in cursor.fetchall()}
    return set(PaymentAudit.objects.values_list("chain", flat=True).distinct())


def _check_nothing_beyond_heads(report: ChainReport) -> None:
    """A row past its chain's head means the head table was rewound. Rows and heads commit
    together, so the rows are read before the heads: an append meanwhile is no false alarm."""
    ends = {
        chain: PaymentAudit.objects.filter(chain=chain).order_by("-seq").values_list("seq").first()
        for chain in report.heads
    }
    heads = dict(AuditChainHead.objects.values_list("chain", "seq"))
    for chain, end in sorted(ends.items()):
        if end is not None and end[0] > heads.get(chain, 0):
            report.problems.append(
                ChainProblem(
                    chain,
                    end[0],
                    None,
                    f"the stored chain head says seq {heads.get(chain, 0)}; rows end at seq "
                    f"{end[0]}",
                )
            )


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


def verification_record(
    report: ChainReport, *, source: str, refused: Sequence[str] = ()
) -> ChainVerification:
    """Keep the outcome of a run: /metrics reports the newest one's age and result. A refused
    (forged or altered) checkpoint is a failure too."""
    problems = [*refused, *(str(p) for p in report.problems)]
    return ChainVerification.objects.create(
        source=source,
        ok=not problems,
        rows_checked=report.rows_checked,
        chains=len(report.heads),
        first_problem=problems[0] if problems else "",
    )
