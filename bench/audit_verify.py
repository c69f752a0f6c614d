"""How fast the audit hash chains verify: from genesis (`verify_audit_chain --full`, in one
process, two and one per core, beside the rate at which the rows can only be read) and
incrementally after a signed checkpoint (the default), on a throwaway test database filled with
N chained rows (PostgreSQL when DATABASE_URL points at one, else SQLite, which verifies in one
process). The machine may be shared: each figure is printed with the load average.

    make bench                    # or: .venv/bin/python bench/audit_verify.py --rows 200000
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import QuerySet  # noqa: E402

from audits import checkpoints, context, verify  # noqa: E402
from audits.chain import GENESIS_HASH, content_digest, link_digest  # noqa: E402
from audits.models import AuditChainHead, PaymentAudit  # noqa: E402

EXTRA_ROWS = 1_000  # appended after the checkpoint, as an hour of a quiet day would


def fill(rows: int, *, start: datetime.datetime) -> None:
    """Chained rows straight into the table (the receivers would take hours at volume),
    hashed exactly as the append does, spread over every chain."""
    user_id = context.ensure_system_user().pk
    shards = settings.AUDIT_CHAIN_SHARDS
    heads = {h.chain: (h.seq, h.last_hash) for h in AuditChainHead.objects.all()}
    batch: list[PaymentAudit] = []
    for n in range(rows):
        chain = n % shards
        seq, prev = heads.get(chain, (0, GENESIS_HASH))
        state = {"amount": 100 + n % 5000, "currency": "EUR", "status": "captured", "n": n}
        row = PaymentAudit(
            id=uuid.uuid4(),
            user_id=user_id,
            action_type="task.payment.update",
            object_type="payments.payment",
            object_id=str(n),
            before_state={**state, "status": "authorized"},
            after_state=state,
            ip_address="127.0.0.1",
            device_id=None,
            request_id="",
            created_at=start + datetime.timedelta(seconds=n),
            chain=chain,
            seq=seq + 1,
            prev_hash=prev,
        )
        row.row_hash = link_digest(prev, content_digest(row))
        heads[chain] = (seq + 1, row.row_hash)
        batch.append(row)
        if len(batch) == 10_000:
            QuerySet(PaymentAudit).bulk_create(batch)
            batch = []
            print(f"  filled {n + 1:,} of {rows:,} rows", flush=True)
    QuerySet(PaymentAudit).bulk_create(batch)
    with transaction.atomic():
        for chain, (seq, digest) in heads.items():
            previous = (
                PaymentAudit.objects.filter(chain=chain, seq=seq - 1).values_list("row_hash")
                if seq > 1
                else None
            )
            AuditChainHead.objects.update_or_create(
                chain=chain,
                defaults={
                    "seq": seq,
                    "last_hash": digest,
                    "prev_hash": previous.get()[0] if previous is not None else GENESIS_HASH,
                },
            )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE payment_audits")


def load() -> str:
    """The 1-minute load average: the machine is shared, every figure is printed beside it."""
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def timed(label: str, run: object, *, cpu_shown: bool = False) -> tuple[float, int]:
    started, cpu = time.perf_counter(), time.process_time()
    report = run()  # type: ignore[operator]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert report.ok, report.problems[:3]
    rows = report.rows_checked
    # In one process, its CPU time per row is a figure the other sessions' load hardly moves.
    cost = f"Python CPU {cpu / max(rows, 1) * 1e6:.1f} us/row; " if cpu_shown else ""
    print(
        f"  {label}: {rows:,} rows in {seconds:.3f}s, {rows / seconds:,.0f} rows/s "
        f"({cost}load {load()})",
        flush=True,
    )
    return seconds, rows


def fetch_floor() -> tuple[float, int]:
    """The rows read as verification reads them, nothing hashed: what verifying can approach."""
    heads = dict(AuditChainHead.objects.values_list("chain", "seq"))
    started, rows = time.perf_counter(), 0
    if connection.vendor == "postgresql":
        for window in verify._windows_postgresql({c: (0, seq) for c, seq in heads.items()}):
            rows += len(window)
    else:
        for chain, seq in heads.items():
            for page in verify._pages_portable(chain, 0, seq):
                rows += len(page)
    seconds = time.perf_counter() - started
    print(f"  floor, rows read only: {rows:,} rows, {rows / seconds:,.0f} rows/s (load {load()})")
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(f"Filling {args.rows:,} chained audit rows on {connection.vendor}...", flush=True)
        started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=args.rows)
        fill(args.rows, start=started)
        cores = os.cpu_count() or 1
        counts = sorted({1, 2, cores})
        print("Verifying...", flush=True)
        floor = fetch_floor()
        full = {
            n: timed(
                f"full, {n} process{'es' if n > 1 else ''}",
                lambda n=n: checkpoints.verify_from(None, workers=n),
                cpu_shown=n == 1,
            )
            for n in counts
        }
        began = time.perf_counter()
        checkpoint, _ = checkpoints.checkpoint_create()
        signing = time.perf_counter() - began
        print(f"  checkpoint (incremental verify + sign): {signing:.3f}s", flush=True)
        fill(EXTRA_ROWS, start=datetime.datetime.now(datetime.UTC))
        incremental = timed(
            f"incremental after {EXTRA_ROWS:,} new rows",
            lambda: checkpoints.verify_incremental()[0],
        )
        print(f"\nverify_audit_chain at {args.rows:,} rows ({connection.vendor}, {cores} cores):")
        print(f"  {'rows read only (floor):':<24} {floor[1] / floor[0]:>10,.0f} rows/s")
        for n, (seconds, rows) in full.items():
            label = f"full, {n} process{'es' if n > 1 else ''}:"
            print(f"  {label:<24} {rows / seconds:>10,.0f} rows/s")
        print(f"  incremental after a checkpoint (+{EXTRA_ROWS:,} rows): {incremental[0]:.3f}s")
        print(f"  (checkpoint {checkpoint.pk}, {checkpoint.rows:,} rows, key {checkpoint.key_id})")
        print(f"  load average at the end: {load()}")
        from measuring import Figure, report  # make bench's summary

        floor_rate = floor[1] / floor[0]
        report(
            "audit_verify",
            [
                Figure(
                    f"verify, full, {n} process{'es' if n > 1 else ''}",
                    rows / seconds,
                    "rows/s",
                    floor=floor_rate,
                    floor_name="rows read only",
                    target=">= 100000",
                )
                for n, (seconds, rows) in full.items()
            ]
            + [Figure("verify, incremental", incremental[0], "s", target="<= 1")],
            details={"rows": args.rows, "extra_rows": EXTRA_ROWS, "cores": cores},
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
