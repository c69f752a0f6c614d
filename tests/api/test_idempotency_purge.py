from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from payments.models import IdempotencyRecord
from payments.tasks import idempotency_records_purge

pytestmark = pytest.mark.django_db


def test_saved_answers_older_than_a_day_are_purged() -> None:
    owner = User.objects.create_user("integration")
    old, fresh = (
        IdempotencyRecord.objects.create(
            key=key, owner=owner, endpoint="POST /x", fingerprint="0" * 64
        )
        for key in ("old", "fresh")
    )
    IdempotencyRecord.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert idempotency_records_purge.delay().get() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    assert fresh.pk
