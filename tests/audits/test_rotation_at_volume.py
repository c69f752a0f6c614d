"""Issue 13's rotation test at its size: 100,002 encrypted values moved to a new key by
rotate_keys' code, interrupted in the middle and resumed: every value readable, none left on the
old key, none lost. (`make bench` times the same run: bench/key_rotation.py.)"""

from __future__ import annotations

import base64
import os

import pytest
from django.db import models

from audits.crypto import envelope, rotation
from audits.crypto.fields import StoredEnvelope
from audits.crypto.keys import provider
from payments.models import Merchant

pytestmark = pytest.mark.django_db

MERCHANTS = 33_334  # three encrypted values each: 100,002
FIELDS = ("contact_name", "contact_email", "contact_phone")


def _value(field: str, n: int) -> str:
    return {
        "contact_name": f"Contact {n}",
        "contact_email": f"finance{n}@volume.example",
        "contact_phone": f"+44 20 7946 {n % 10000:04d}",
    }[field]


def _fill() -> None:
    rows = [
        Merchant(
            legal_name=f"Volume {n} Ltd",
            country="GB",
            **{
                field: StoredEnvelope(
                    envelope.encrypt(_value(field, n), context=f"payments.merchant.{field}")
                )
                for field in FIELDS
            },
        )
        for n in range(MERCHANTS)
    ]
    # Past the audited manager, which refuses bulk writes: test data, not records.
    models.QuerySet(Merchant).bulk_create(rows, batch_size=5000)


class Interrupted(Exception):
    pass


def test_rotation_of_100_000_values_interrupted_and_resumed(settings) -> None:
    _fill()
    old = provider().key_ids()[0]
    settings.FIELD_ENCRYPTION_KEYS = [
        base64.urlsafe_b64encode(os.urandom(32)).decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    newest = provider().key_ids()[0]
    total = MERCHANTS * len(FIELDS)
    batches = 0

    def stop_in_the_middle(label: str, done: int, total_of_column: int) -> None:
        nonlocal batches
        batches += 1  # called after each committed batch of 2,000 (or a column's last)
        if batches * 2000 >= total // 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        rotation.rotate(batch_size=2000, progress=stop_in_the_middle)
    halfway = rotation.key_status()
    on_new = sum(halfway[f"payments.merchant.{f}"][newest] for f in FIELDS)
    on_old = sum(halfway[f"payments.merchant.{f}"][old] for f in FIELDS)
    assert 0 < on_new < total and on_new + on_old == total  # stopped in the middle, none lost

    moved = rotation.rotate(batch_size=2000, progress=lambda *args: None)

    assert sum(moved[f"payments.merchant.{f}"] for f in FIELDS) == on_old  # only what was left
    status = rotation.key_status()
    for field in FIELDS:
        assert status[f"payments.merchant.{field}"] == {newest: MERCHANTS}
    # Every value reads back as it was written, with the old key gone from the configuration.
    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]
    read = models.QuerySet(Merchant).order_by("pk").values_list(*FIELDS)
    for n, values in enumerate(read.iterator(chunk_size=5000)):
        assert values == tuple(_value(field, n) for field in FIELDS)
