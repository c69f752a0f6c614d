"""Data at volume for benches (`manage.py generate_data`): merchants, payments, KYC cases and
payment audit rows, written in batches straight into the tables.

Payments, merchants and cases go in with batched inserts that skip the audit receivers (like
bench data; the audited managers refuse bulk writes, so the plain QuerySet is used on purpose).
The audit rows are the generated history of those payments, and they are chained exactly as
the application chains them: each batch locks every chain head, gives each row its place with
the chain's own `chain_for`, `content_digest` and `link_digest` (audits/chain.py), writes the
rows (COPY on PostgreSQL) and moves the heads on, in one transaction; `verify_audit_chain`
verifies them like any other row.
"""

from __future__ import annotations

import datetime
import json
import random
import secrets
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar, cast

from django.db import connection, models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audits import partitions
from audits.chain import CONTENT_COLUMNS, chain_for, content_digest, ensure_heads, link_digest
from audits.context import system_user_id
from audits.crypto import subjects
from audits.models import AuditChainHead, PaymentAudit, SubjectKey
from kyc.models import KycCase
from payments.models import Merchant, Payment

Progress = Callable[[str, int, int], None]
Row = TypeVar("Row", bound=models.Model)


def _plain(model: type[Row]) -> QuerySet[Row]:
    """The model's rows without its audited manager: generated data in bulk, on purpose."""
    return QuerySet(model)


PAYMENT_STATUSES = ["captured"] * 7 + [
    "failed",
    "canceled",
    "pending",
    "refunded",
    "partially_refunded",
]
CASE_STATUSES = (
    ["submitted"] * 30
    + ["in_review"] * 20
    + ["needs_information"] * 5
    + ["escalated"] * 5
    + ["approved"] * 30
    + ["rejected"] * 10
)
COUNTRIES = ["GB", "DE", "FR", "ES", "IE", "NL", "CZ", "PL", "IT", "SE"]
_AUDIT_COLUMNS = (*CONTENT_COLUMNS, "chain", "seq", "prev_hash", "row_hash")


def merchants_generate(count: int, *, rng: random.Random, progress: Progress) -> list[int]:
    run = secrets.token_hex(3)
    ids: list[int] = []
    for start in range(0, count, 1000):
        batch = [
            Merchant(
                legal_name=f"Volume {run} Merchant {n} Ltd",
                trading_name=f"Volume {run} {n}",
                contact_name=f"Contact {n}",
                contact_email=f"volume-{run}-{n}@merchant.example",
                country=rng.choice(COUNTRIES),
                status=Merchant.Status.ACTIVE if rng.random() < 0.9 else Merchant.Status.PENDING,
            )
            for n in range(start, min(start + 1000, count))
        ]
        # Each contact person's data is sealed under their own key (erasure by crypto-shredding).
        index = Merchant._meta.get_field("contact_email_index")
        keys = subjects.create_many(
            scope=Merchant.CONTACT_SCOPE,
            email_indexes=[index.index_of(m.contact_email) for m in batch],
        )
        for merchant, key in zip(batch, keys, strict=True):
            merchant.contact_subject_id = key
        created = _plain(Merchant).bulk_create(batch)
        SubjectKey.objects.bulk_update(
            [SubjectKey(pk=key, object_id=str(m.pk)) for m, key in zip(created, keys, strict=True)],
            ["object_id"],
        )
        ids += [m.pk for m in created]
        progress("merchants", len(ids), count)
    return ids


def payments_generate(
    count: int, *, merchants: list[int], batch_size: int, rng: random.Random, progress: Progress
) -> list[int]:
    """Payments over the last 365 days; returns the ids of up to 100,000 of them (for the audit
    rows' objects)."""
    now = timezone.now()
    sample: list[int] = []
    done = 0
    while done < count:
        size = min(batch_size, count - done)
        rows = []
        for _ in range(size):
            amount = rng.randint(100, 500_000)
            status = rng.choice(PAYMENT_STATUSES)
            rows.append(
                Payment(
                    merchant_id=rng.choice(merchants),
                    gateway=rng.choice(("stripe", "braintree")),
                    amount=amount,
                    currency=rng.choice(("EUR", "GBP", "USD")),
                    status=status,
                    captured_amount=0 if status in ("failed", "canceled", "pending") else amount,
                    card_brand=rng.choice(("visa", "mastercard", "amex")),
                    card_last4=f"{rng.randint(0, 9999):04d}",
                )
            )
        created = _plain(Payment).bulk_create(rows)
        # created_at is auto_now_add: spread the batch over the year afterwards, in one UPDATE.
        ids = [p.pk for p in created]
        moment = now - datetime.timedelta(seconds=rng.randint(0, 365 * 86400))
        _plain(Payment).filter(pk__in=ids).update(created_at=moment, updated_at=moment)
        if len(sample) < 100_000:
            sample += ids[: 100_000 - len(sample)]
        done += size
        progress("payments", done, count)
    return sample


def cases_generate(
    count: int, *, merchants: list[int], batch_size: int, rng: random.Random, progress: Progress
) -> None:
    now = timezone.now()
    decider = system_user_id()
    done = 0
    while done < count:
        size = min(batch_size, count - done)
        rows = []
        for _ in range(size):
            status = rng.choice(CASE_STATUSES)
            submitted = now - datetime.timedelta(hours=rng.randint(1, 24 * 180))
            case = KycCase(
                reference="KYC-" + secrets.token_hex(6).upper(),
                merchant_id=rng.choice(merchants),
                kind=rng.choice(("kyc", "kyb")),
                status=status,
                risk_level=rng.choice(("low", "medium", "medium", "high")),
                risk_score=rng.randint(0, 100),
                submitted_at=submitted,
                due_at=submitted + datetime.timedelta(hours=48),
            )
            if status in ("approved", "rejected"):
                case.decision = "approve" if status == "approved" else "reject"
                case.decided_by_id = decider
                case.decided_at = submitted + datetime.timedelta(hours=rng.randint(1, 72))
                case.decision_reason = (
                    "approved" if status == "approved" else "Identity could not be verified"
                )
            if status == "needs_information":
                case.sla_paused_at = submitted + datetime.timedelta(hours=2)
                case.information_request = "Please send a proof of address."
            if status == "escalated":
                case.escalation_reason = "overdue"
            rows.append(case)
        _plain(KycCase).bulk_create(rows)
        done += size
        progress("KYC cases", done, count)


def _audit_row(
    rng: random.Random, payment_id: int, moment: datetime.datetime, user_id: int
) -> SimpleNamespace:
    before = rng.choice(("pending", "authorized"))
    after = rng.choice(("captured", "refunded", "failed"))
    return SimpleNamespace(
        id=uuid.uuid4(),
        user_id=user_id,
        action_type=rng.choice(
            ("webhook.payment.update", "web.payment.update", "api.payment.update")
        ),
        object_type="payments.payment",
        object_id=str(payment_id),
        before_state={"status": before},
        after_state={"status": after},
        # Many client addresses and devices, as staff and merchants have: the audit search by
        # either then finds rows, as it would in production.
        ip_address=f"10.{rng.randrange(4)}.{rng.randrange(250)}.1",
        device_id=f"dev-{rng.randrange(5000)}" if rng.random() < 0.8 else None,
        request_id=uuid.uuid4().hex,
        created_at=moment,
    )


def _write_audit_rows(rows: list[SimpleNamespace]) -> None:
    if connection.vendor == "postgresql":
        columns = ", ".join(_AUDIT_COLUMNS)
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY payment_audits ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(
                    (
                        row.id,
                        row.user_id,
                        row.action_type,
                        row.object_type,
                        row.object_id,
                        json.dumps(row.before_state),
                        json.dumps(row.after_state),
                        row.ip_address,
                        row.device_id,
                        row.request_id,
                        row.created_at,
                        row.chain,
                        row.seq,
                        row.prev_hash,
                        row.row_hash,
                    )
                )
    else:
        _plain(PaymentAudit).bulk_create(
            [PaymentAudit(**{c: getattr(row, c) for c in _AUDIT_COLUMNS}) for row in rows]
        )


def audit_rows_generate(
    count: int, *, payments: list[int], batch_size: int, rng: random.Random, progress: Progress
) -> None:
    """Audit rows for the generated payments, chained like the application's own appends."""
    if not payments:
        raise ValueError("Audit rows need payments to be about.")
    user_id = system_user_id()
    ensure_heads()
    start = timezone.now() - datetime.timedelta(days=365)
    if partitions.is_partitioned():
        # A partition per month of the history, so that no row lands in DEFAULT.
        utc = datetime.UTC
        first, last = start.astimezone(utc).date(), timezone.now().astimezone(utc).date()
        partitions.ensure(partitions.months_between(first, last))
    step = datetime.timedelta(days=365) / max(count, 1)
    done = 0
    while done < count:
        size = min(batch_size, count - done)
        with transaction.atomic():
            # Every head locked: the application's own appends wait for this batch.
            heads = {
                h.chain: h for h in AuditChainHead.objects.select_for_update().order_by("chain")
            }
            rows = []
            for n in range(size):
                row = _audit_row(rng, rng.choice(payments), start + step * (done + n), user_id)
                row.chain = chain_for(row.object_type, row.object_id)
                head = heads[row.chain]
                head.seq += 1
                head.prev_hash = head.last_hash
                row.seq, row.prev_hash = head.seq, head.last_hash
                row.row_hash = link_digest(
                    row.prev_hash, content_digest(cast(PaymentAudit, cast(Any, row)))
                )
                head.last_hash = row.row_hash
                rows.append(row)
            _write_audit_rows(rows)
            AuditChainHead.objects.bulk_update(heads.values(), ["seq", "prev_hash", "last_hash"])
        done += size
        progress("audit rows", done, count)
