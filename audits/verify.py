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
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
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

# Rows fetched per query: keyset pages over (chain, seq), the unique index, on SQLite; windows
# of about as many rows over every chain read together on PostgreSQL.
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
# A window holds a range of seqs of each chain read together (one index range each, OR'ed
# into one bitmap): a heap page holds rows of every chain, so chains read together read each
# page once, where a chain read on its own reads nearly every page for a few of its rows.
_PG_WINDOW = """
SELECT seq, prev_hash, row_hash, id::text, user_id, action_type, object_type, object_id,
       before_state::text, after_state::text, ip_address, device_id, request_id,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), chain
FROM payment_audits
WHERE {ranges}
ORDER BY chain, seq
"""
_CHAIN = 14  # the position of "chain" in _PG_WINDOW's rows
_RANGE = "(chain = %s AND seq > %s AND seq <= %s)"


def _windows_postgresql(
    ranges: dict[int, tuple[int, int]], closed: set[int] | None = None
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of each chain from its (after, until] range, ordered by chain and seq, in
    windows of about BATCH rows. A thread reads the next window while the caller checks this
    one, so PostgreSQL's work and the transfer overlap the hashing (psycopg waits without the
    GIL); the cursor is used by one thread at a time. Chains the caller adds to `closed` are
    read no further."""
    positions = {chain: after for chain, (after, until) in ranges.items() if after < until}
    closed = closed if closed is not None else set()

    def windows() -> Iterator[tuple[str, list[int]]]:
        while True:
            for chain in closed:
                positions.pop(chain, None)
            if not positions:
                return
            width = max(BATCH // len(positions), 1)
            params: list[int] = []
            for chain, after in list(positions.items()):
                until = ranges[chain][1]
                params += [chain, after, min(after + width, until)]
                if after + width >= until:
                    del positions[chain]
                else:
                    positions[chain] = after + width
            yield _PG_WINDOW.format(ranges=" OR ".join([_RANGE] * (len(params) // 3))), params

    with connection.cursor() as cursor, ThreadPoolExecutor(1) as reader:

        def read(query: tuple[str, list[int]]) -> list[tuple[Any, ...]]:
            cursor.execute(*query)
            return cursor.fetchall()

        queries = windows()
        pending = reader.submit(read, next(queries)) if positions else None
        while pending is not None:
            rows = pending.result()
            query = next(queries, None)
            pending = reader.submit(read, query) if query else None
            yield rows


def _digest_postgresql(values: tuple[Any, ...]) -> str:
    """content_digest_of, from _PG_WINDOW's text columns (the same canonical JSON)."""
    row_id, user_id, action, otype, oid, before, after, ip, device, request, at = values[3:14]
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


class _Walk:
    """One chain being verified: the row expected next and the hash it must link to."""

    def __init__(
        self, chain: int, start: tuple[int, str], until: tuple[int, str], anchored: bool = True
    ) -> None:
        self.result = ChainResult(chain, 0, start)
        self.until = until
        # An unanchored start row was detached to cold storage (audits/cold_storage.py): the
        # chain goes on from its hash without reading it.
        self.anchored = anchored
        self.expected, self.prev_hash = start[0] + 1, start[1]

    def anchor(self, row: tuple[Any, ...] | None, digest: Callable[..., str]) -> None:
        """The row at a non-zero start: the one whose hash a checkpoint holds."""
        start_seq, start_hash = self.result.head
        if row is None or row[2] != start_hash or link_digest(row[1], digest(row)) != row[2]:
            what = "is missing" if row is None else "does not match the checkpoint"
            self.result.problem = ChainProblem(
                self.result.chain, start_seq, str(row[_ID]) if row else None, f"{what} (altered)"
            )
        else:
            self.result.rows_checked += 1

    def check(self, rows: Sequence[tuple[Any, ...]], digest: Callable[..., str]) -> None:
        """The chain's next rows, in seq order; stops at the first that does not hold."""
        result, expected, prev_hash = self.result, self.expected, self.prev_hash
        chain, sha256, checked = result.chain, _sha256, 0
        for values in rows:
            seq, row_prev, row_hash = values[0], values[1], values[2]
            if seq != expected:
                problem = ChainProblem(
                    chain, expected, None, f"missing; next row present is seq {seq}"
                )
            elif row_prev != prev_hash:
                problem = ChainProblem(
                    chain, seq, str(values[_ID]), "does not link to the previous row"
                )
            elif sha256((prev_hash + digest(values)).encode()).hexdigest() != row_hash:
                problem = ChainProblem(
                    chain, seq, str(values[_ID]), "content does not match its hash (altered)"
                )
            else:
                checked += 1
                expected, prev_hash = seq + 1, row_hash
                continue
            result.problem = problem
            break
        result.rows_checked += checked
        if checked:
            result.head = (expected - 1, prev_hash)
        self.expected, self.prev_hash = expected, prev_hash

    def end(self) -> ChainResult:
        result = self.result
        if result.problem is None and result.head != self.until:
            result.problem = ChainProblem(
                result.chain,
                result.head[0],
                None,
                f"the stored chain head says seq {self.until[0]}; rows end at seq {result.head[0]}",
            )
        return result


# chain, start (seq, hash), until, whether the start row is read (see _Walk.anchored)
Job = tuple[int, tuple[int, str], tuple[int, str], bool]


def verify_chains(
    jobs: Sequence[Job], on_rows: Callable[[int], None] | None = None
) -> list[ChainResult]:
    """Verify each chain from its start (seq, hash: genesis or a checkpoint's head) up to its
    until (the head read before verifying). The row at a non-zero start is checked too. On
    PostgreSQL the chains are read together (see _PG_WINDOW), elsewhere one after another.
    `on_rows` hears of the rows read as verification goes."""
    walks = {chain: _Walk(chain, start, until, anchored) for chain, start, until, anchored in jobs}
    if connection.vendor == "postgresql":
        _walk_postgresql(walks, on_rows)
    else:
        _walk_portable(walks, on_rows)
    return [walk.end() for walk in walks.values()]


def _walk_postgresql(walks: dict[int, _Walk], on_rows: Callable[[int], None] | None) -> None:
    digest = _digest_postgresql
    anchors = {
        c: (w.expected - 2, w.expected - 1)
        for c, w in walks.items()
        if w.expected > 1 and w.anchored
    }
    found = {row[_CHAIN]: row for rows in _windows_postgresql(anchors) for row in rows}
    for chain in anchors:
        walks[chain].anchor(found.get(chain), digest)
    open_walks = {c: w for c, w in walks.items() if w.result.problem is None}
    ranges = {c: (w.expected - 1, w.until[0]) for c, w in open_walks.items()}
    closed: set[int] = set()
    for rows in _windows_postgresql(ranges, closed):
        seen = set()
        for chain, chain_rows in groupby(rows, key=itemgetter(_CHAIN)):
            walk = open_walks.get(chain)
            if walk is not None:
                walk.check(list(chain_rows), digest)
                seen.add(chain)
        for chain, walk in list(open_walks.items()):
            if chain not in seen and walk.expected <= walk.until[0]:
                # Windows follow on from each other: a chain's window without its expected
                # row means that row is gone.
                _missing(walk)
            if walk.result.problem is not None or walk.expected > walk.until[0]:
                del open_walks[chain]
                closed.add(chain)
        if on_rows:
            on_rows(len(rows))
        if not open_walks:
            return


def _missing(walk: _Walk) -> None:
    """The expected row is gone: name the next one present, as a keyset read would reach it;
    with none before the head, end() says where the rows end."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(seq) FROM payment_audits WHERE chain = %s AND seq > %s AND seq <= %s",
            [walk.result.chain, walk.expected, walk.until[0]],
        )
        (present,) = cursor.fetchone()
    if present is not None:
        walk.result.problem = ChainProblem(
            walk.result.chain,
            walk.expected,
            None,
            f"missing; next row present is seq {present}",
        )
    else:
        walk.expected = walk.until[0] + 1  # nothing more to read; end() names the gap


def _walk_portable(walks: dict[int, _Walk], on_rows: Callable[[int], None] | None) -> None:
    for chain, walk in walks.items():
        start_seq = walk.expected - 1
        if start_seq > 0 and walk.anchored:
            anchor = next(
                (page[0] for page in _pages_portable(chain, start_seq - 1, start_seq)), None
            )
            walk.anchor(anchor, _digest_portable)
            if walk.result.problem:
                continue
        for page in _pages_portable(chain, start_seq, walk.until[0]):
            walk.check(page, _digest_portable)
            if on_rows:
                on_rows(len(page))
            if walk.result.problem:
                break


def verify_chain(
    chain: int, start: tuple[int, str], until: tuple[int, str], anchored: bool = True
) -> ChainResult:
    """verify_chains for one chain."""
    return verify_chains([(chain, start, until, anchored)])[0]


def _verify_in_worker(jobs: Sequence[Job]) -> list[ChainResult]:
    try:
        return verify_chains(jobs)
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
    unanchored: frozenset[int] = frozenset(),
) -> ChainReport:
    """Verify every chain from `starts` (chain -> (seq, hash); genesis where absent) up to the
    heads stored now; the start rows of `unanchored` chains are detached, not read. `workers`
    > 1 verifies chains in parallel processes (PostgreSQL, outside a transaction only: other
    connections could not see its rows)."""
    report = ChainReport()
    starts = starts or {}
    heads = {h.chain: (h.seq, h.last_hash) for h in AuditChainHead.objects.all()}
    chains = set(heads) | set(starts)
    if not starts:
        # From genesis every row is read anyway: rows in a chain without a head show too.
        chains |= _chains_with_rows()
    jobs = [
        (
            chain,
            starts.get(chain, (0, GENESIS_HASH)),
            heads.get(chain, (0, GENESIS_HASH)),
            chain not in unanchored,
        )
        for chain in sorted(chains)
    ]
    total = sum(max(until[0] - start[0], 0) for _, start, until, _ in jobs)
    workers = min(workers or default_workers(), max(len(jobs), 1))
    if workers > 1 and (connection.vendor != "postgresql" or connection.in_atomic_block):
        workers = 1
    results: list[ChainResult] = []
    if workers == 1:
        read = 0

        def on_rows(rows: int) -> None:
            nonlocal read
            read += rows
            if progress:
                progress(min(read, total), total)

        results = verify_chains(jobs, on_rows)
        report.rows_checked = sum(result.rows_checked for result in results)
        if progress:
            progress(report.rows_checked, total)
    else:
        connections.close_all()  # each forked worker opens its own connection
        context = multiprocessing.get_context("fork")
        # A share of the chains per process, read together (verify_chains).
        groups = [jobs[n::workers] for n in range(workers)]
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_verify_in_worker, group) for group in groups]
            for future in as_completed(futures):
                results += future.result()
                report.rows_checked = sum(result.rows_checked for result in results)
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
