"""Key rotation at volume: merchants whose contact name, email and phone (three encrypted
values each) are moved to a new key by `rotate_keys`' code, interrupted half-way and resumed,
on a throwaway test database (PostgreSQL when DATABASE_URL points at one, else SQLite).
Reports values per second and checks that every value is on the new key and reads back.

    make bench                    # or: .venv/bin/python bench/key_rotation.py --values 100000
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import time

import measuring

measuring.setup_django()

from django.conf import settings  # noqa: E402
from django.db import connection, models, transaction  # noqa: E402
from measuring import Figure, throwaway_database  # noqa: E402

from audits.crypto import envelope, rotation  # noqa: E402
from audits.crypto.fields import StoredEnvelope  # noqa: E402
from audits.crypto.keys import provider  # noqa: E402
from payments.models import Merchant  # noqa: E402

FIELDS = ("contact_name", "contact_email", "contact_phone")


class Interrupted(Exception):
    pass


def _fill(merchants: int) -> None:
    """Bench data written directly (no services, no audit rows): only the values matter. Each
    value has its own data key wrapped by the KEK, as values without a person's key do."""
    rows = []
    for n in range(merchants):
        email = f"finance{n}@bench.example"
        rows.append(
            Merchant(
                legal_name=f"Bench {n} Ltd",
                country="GB",
                status="active",
                risk_level="low",
                contact_name=StoredEnvelope(
                    envelope.encrypt(f"Contact {n}", context="payments.merchant.contact_name")
                ),
                contact_email=StoredEnvelope(
                    envelope.encrypt(email, context="payments.merchant.contact_email")
                ),
                contact_phone=StoredEnvelope(
                    envelope.encrypt(
                        f"+44 20 7946 {n % 10000:04d}", context="payments.merchant.contact_phone"
                    )
                ),
            )
        )
    with transaction.atomic():
        # Past the audited manager, which refuses bulk writes: bench data, not records.
        models.QuerySet(Merchant).bulk_create(rows, batch_size=2000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    merchants = max(1, args.values // len(FIELDS))
    with throwaway_database():
        print(f"Encrypting {merchants * len(FIELDS)} values on {connection.vendor}...")
        _fill(merchants)
        new_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        settings.FIELD_ENCRYPTION_KEYS = [new_key, *settings.FIELD_ENCRYPTION_KEYS]
        provider.cache_clear()
        newest = provider().key_ids()[0]
        half, batches = merchants * len(FIELDS) // 2, 0

        def stop_half_way(label: str, done: int, total: int) -> None:
            nonlocal batches
            batches += 1
            if batches * args.batch_size >= half:
                raise Interrupted

        started = time.perf_counter()
        with contextlib.suppress(Interrupted):
            rotation.rotate(batch_size=args.batch_size, progress=stop_half_way)
        first = time.perf_counter() - started
        started = time.perf_counter()
        moved = sum(rotation.rotate(batch_size=args.batch_size, progress=lambda *a: None).values())
        second = time.perf_counter() - started
        total = merchants * len(FIELDS)
        status = rotation.key_status()
        on_newest = sum(status[f"payments.merchant.{name}"][newest] for name in FIELDS)
        sample = Merchant.objects.order_by("-pk").first()
        assert on_newest == total, (on_newest, total)
        assert sample is not None and sample.contact_email.endswith("@bench.example")
        print(f"Rotation of {total} values (interrupted after {total - moved}, then resumed):")
        print(f"  {total / (first + second):,.0f} values per second, {first + second:.1f} s")
        print(f"  all {on_newest} on the new key, and they read back")
        measuring.report(
            "key_rotation",
            [Figure("key rotation", total / (first + second), "values/s")],
            details={"values": total},
        )


if __name__ == "__main__":
    main()
