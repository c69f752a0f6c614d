"""Key providers: where the key-encryption keys (KEKs) live.

A provider wraps and unwraps data keys; it never sees the data. The built-in one reads
`FIELD_ENCRYPTION_KEYS` (32-byte keys in URL-safe base64, newest first). A KMS, an HSM or Vault
transit is one class with the same four methods, named by `settings.KEY_PROVIDER`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.exceptions import ImproperlyConfigured

from .errors import DecryptionFailed, UnknownKey


class KeyProvider(Protocol):
    def key_ids(self) -> Sequence[str]:
        """Every key id this provider can unwrap with, newest (the one `wrap` uses) first."""

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """Encrypt a data key with the newest KEK: (that key's id, the wrapped data key)."""

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """The data key back; raises DecryptionFailed if tampered, UnknownKey if retired."""

    def index_key(self, key_id: str) -> bytes:
        """A 32-byte HMAC key for blind indexes, bound to a KEK but never equal to it."""


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def _decode_key(text: str, position: int) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS key #{position} is not URL-safe base64."
        ) from exc
    if len(key) != 32:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS key #{position} decodes to {len(key)} bytes; 32 are needed."
        )
    return key


class SettingsKeyProvider:
    """KEKs from `settings.FIELD_ENCRYPTION_KEYS`. A data key is wrapped with AES-256-GCM under
    a wrapping key derived (HKDF) from the configured key; the blind-index key is derived the
    same way with another label, so neither is the configured key itself."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty.")
        self._wrapping: dict[str, AESGCM] = {}
        self._index: dict[str, bytes] = {}
        order: list[str] = []
        for position, text in enumerate(keys, start=1):
            secret = _decode_key(text, position)
            # The id is public (it is stored in every envelope): a hash of a derived value.
            key_id = hashlib.sha256(_hkdf(secret, b"backoffice key id")).hexdigest()[:16]
            if key_id in self._wrapping:
                raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS key #{position} is repeated.")
            self._wrapping[key_id] = AESGCM(_hkdf(secret, b"backoffice kek wrap v1"))
            self._index[key_id] = _hkdf(secret, b"backoffice blind index v1")
            order.append(key_id)
        self._order = tuple(order)

    @classmethod
    def from_settings(cls) -> SettingsKeyProvider:
        from django.conf import settings

        return cls(settings.FIELD_ENCRYPTION_KEYS)

    def key_ids(self) -> Sequence[str]:
        return self._order

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        key_id = self._order[0]
        nonce = os.urandom(12)
        return key_id, nonce + self._wrapping[key_id].encrypt(nonce, data_key, key_id.encode())

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        kek = self._wrapping.get(key_id)
        if kek is None:
            raise UnknownKey(key_id)
        try:
            return kek.decrypt(wrapped[:12], wrapped[12:], key_id.encode())
        except InvalidTag as exc:
            raise DecryptionFailed("the wrapped data key does not authenticate") from exc

    def index_key(self, key_id: str) -> bytes:
        try:
            return self._index[key_id]
        except KeyError:
            raise UnknownKey(key_id) from None
