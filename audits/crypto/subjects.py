"""Per-person data keys (crypto-shredding).

A value of a person's data is an ordinary envelope whose key id is `subj.<uuid>`: its data key
is wrapped by that person's key (audits.SubjectKey) instead of by a KEK, and the person's key is
wrapped by the newest KEK. Destroying the person's key makes every envelope of theirs, in live
rows and in append-only audit rows alike, unreadable, and changes no row of the trails.

Unwrapped person keys are cached per process for SUBJECT_KEY_CACHE_SECONDS, so a list of
merchants costs no query per row. An erasure clears its own process's cache at once; another
process stops reading the person's data when its cached key expires (README, "Erasure").
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .errors import DecryptionFailed, MalformedEnvelope, SubjectErased
from .keys import provider

PREFIX = "subj."

_cache: dict[uuid.UUID, tuple[bytes, float]] = {}
_erased: set[uuid.UUID] = set()  # an erasure is for good: remembered without a time limit


def key_id_for(subject_id: uuid.UUID) -> str:
    return f"{PREFIX}{subject_id.hex}"


def is_subject_key_id(key_id: str) -> bool:
    return key_id.startswith(PREFIX)


def subject_of(key_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(hex=key_id[len(PREFIX) :])
    except ValueError as exc:
        raise MalformedEnvelope(f"{key_id!r} names no person's key") from exc


def _remember(subject_id: uuid.UUID, key: bytes) -> None:
    _cache[subject_id] = (key, time.monotonic() + settings.SUBJECT_KEY_CACHE_SECONDS)


def forget(subject_ids: Iterable[uuid.UUID] | None = None) -> None:
    """Drop cached keys (all when None): after an erasure, and between tests."""
    if subject_ids is None:
        _cache.clear()
        return
    for subject_id in subject_ids:
        _cache.pop(subject_id, None)


@receiver(setting_changed)
def _reload(setting: str, **kwargs: object) -> None:
    if setting in ("KEY_PROVIDER", "FIELD_ENCRYPTION_KEYS"):
        forget()  # the keys were unwrapped by the old configuration


def create(*, scope: str, email_index: str = "", object_id: str = "") -> uuid.UUID:
    """A new person's key, stored wrapped by the newest KEK; returns its id."""
    from audits.models import SubjectKey

    key = AESGCM.generate_key(bit_length=256)
    kek_id, wrapped = provider().wrap(key)
    row = SubjectKey.objects.create(
        scope=scope,
        object_id=object_id,
        email_index=email_index,
        kek_id=kek_id,
        wrapped_key=wrapped,
    )
    _remember(row.pk, key)
    return row.pk


def create_many(*, scope: str, email_indexes: list[str]) -> list[uuid.UUID]:
    """One new key per email index, in one insert (generated data at volume)."""
    from audits.models import SubjectKey

    keys = provider()
    rows = []
    for email_index in email_indexes:
        key = AESGCM.generate_key(bit_length=256)
        kek_id, wrapped = keys.wrap(key)
        row = SubjectKey(scope=scope, email_index=email_index, kek_id=kek_id, wrapped_key=wrapped)
        _remember(row.pk, key)
        rows.append(row)
    SubjectKey.objects.bulk_create(rows)
    return [row.pk for row in rows]


def _key(subject_id: uuid.UUID) -> bytes:
    now = time.monotonic()
    cached = _cache.get(subject_id)
    if cached is not None and cached[1] > now:
        return cached[0]
    if subject_id in _erased:
        raise SubjectErased(f"person's key {subject_id} was destroyed (erasure)")
    # One query reads this key and re-reads every cached one that has expired: a list of
    # merchants seen a minute ago costs one query again, not one per row.
    expired = {sid for sid, (_, until) in list(_cache.items()) if until <= now}
    erased = _read_keys({subject_id} | expired)
    if subject_id in erased:
        raise SubjectErased(f"person's key {subject_id} was destroyed (erasure)")
    if subject_id not in _cache:
        raise DecryptionFailed(f"person's key {subject_id} does not exist")
    return _cache[subject_id][0]


def _read_keys(subject_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Cache the live ones among these keys, forget the rest; returns the erased ones."""
    from audits.models import SubjectKey

    forget(subject_ids)
    erased = set()
    rows = SubjectKey.objects.filter(pk__in=subject_ids).values_list("pk", "kek_id", "wrapped_key")
    for pk, kek_id, wrapped in rows:
        if bytes(wrapped):
            _remember(pk, provider().unwrap(kek_id, bytes(wrapped)))
        else:
            erased.add(pk)
    _erased.update(erased)
    return erased


def is_erased(subject_id: uuid.UUID) -> bool:
    try:
        _key(subject_id)
    except SubjectErased:
        return True
    return False


def _aad(subject_id: uuid.UUID) -> bytes:
    return f"subject|{subject_id.hex}".encode()


def wrap(subject_id: uuid.UUID, data_key: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_key(subject_id)).encrypt(nonce, data_key, _aad(subject_id))


def unwrap(subject_id: uuid.UUID, wrapped: bytes) -> bytes:
    try:
        return AESGCM(_key(subject_id)).decrypt(wrapped[:12], wrapped[12:], _aad(subject_id))
    except InvalidTag as exc:
        raise DecryptionFailed(
            f"a data key wrapped by person's key {subject_id} is altered"
        ) from exc
