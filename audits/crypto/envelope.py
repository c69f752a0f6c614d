"""Values encrypted as envelopes (the pattern of AWS KMS, Tink and Vault transit).

Each value gets its own random 256-bit data key; the value is sealed with AES-256-GCM under it,
and the data key is wrapped by the provider's newest key-encryption key. The stored text names
the algorithm and the KEK, so a new key or algorithm is a rotation (re-wrap or re-encrypt),
never a schema change:

    enc:aes256gcm-v1:<key id>:<wrapped data key, b64url>:<nonce + ciphertext, b64url>

The associated data binds a value to its field (`context`): an envelope copied into another
field does not decrypt there.

A person's data (`subject=`) has its data key wrapped by that person's own key instead, named
`subj.<uuid>` in the key id place (see subjects.py): destroying it erases every copy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import subjects
from .errors import DecryptionFailed, MalformedEnvelope
from .keys import provider

PREFIX = "enc:"
ALGORITHM = "aes256gcm-v1"  # the one written; rotation re-encrypts any other
READABLE = frozenset({ALGORITHM})  # an older algorithm stays here until rotation retires it


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Envelope:
    algorithm: str
    key_id: str
    wrapped_key: bytes
    sealed: bytes

    def dumps(self) -> str:
        parts = (self.algorithm, self.key_id, _b64(self.wrapped_key), _b64(self.sealed))
        return PREFIX + ":".join(parts)

    @classmethod
    def loads(cls, text: str) -> Envelope:
        if not text.startswith(PREFIX):
            raise MalformedEnvelope("not an envelope")
        parts = text[len(PREFIX) :].split(":")
        if len(parts) != 4:
            raise MalformedEnvelope("an envelope has four parts after its prefix")
        try:
            return cls(parts[0], parts[1], _unb64(parts[2]), _unb64(parts[3]))
        except (binascii.Error, ValueError) as exc:
            raise MalformedEnvelope("an envelope part is not base64") from exc


def is_envelope(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def _aad(algorithm: str, context: str) -> bytes:
    return f"{algorithm}|{context}".encode()


def _wrap(data_key: bytes, subject: uuid.UUID | None) -> tuple[str, bytes]:
    if subject is None:
        return provider().wrap(data_key)
    return subjects.key_id_for(subject), subjects.wrap(subject, data_key)


def _unwrap(key_id: str, wrapped: bytes) -> bytes:
    if subjects.is_subject_key_id(key_id):
        return subjects.unwrap(subjects.subject_of(key_id), wrapped)
    return provider().unwrap(key_id, wrapped)


def encrypt(plaintext: str, *, context: str, subject: uuid.UUID | None = None) -> str:
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(data_key).encrypt(nonce, plaintext.encode(), _aad(ALGORITHM, context))
    key_id, wrapped = _wrap(data_key, subject)
    return Envelope(ALGORITHM, key_id, wrapped, sealed).dumps()


def decrypt(text: str, *, context: str) -> str:
    """The plaintext; SubjectErased when the value's person was erased."""
    envelope = Envelope.loads(text)
    if envelope.algorithm not in READABLE:
        raise MalformedEnvelope(f"unknown algorithm {envelope.algorithm!r}")
    data_key = _unwrap(envelope.key_id, envelope.wrapped_key)
    nonce, body = envelope.sealed[:12], envelope.sealed[12:]
    try:
        plaintext = AESGCM(data_key).decrypt(nonce, body, _aad(envelope.algorithm, context))
    except InvalidTag as exc:
        raise DecryptionFailed(f"the value for {context} does not authenticate") from exc
    return plaintext.decode()


def key_id_of(text: str) -> str:
    return Envelope.loads(text).key_id


def rotate(text: str, *, context: str) -> str:
    """The same value under the newest KEK: the data key re-wrapped (the ciphertext kept), or
    the value re-encrypted when it was written with an older algorithm."""
    envelope = Envelope.loads(text)
    subject = (
        subjects.subject_of(envelope.key_id)
        if subjects.is_subject_key_id(envelope.key_id)
        else None
    )
    if envelope.algorithm != ALGORITHM:
        return encrypt(decrypt(text, context=context), context=context, subject=subject)
    if subject is not None:
        return text  # the person's key is what rotates (rotation.rotate_subject_keys)
    keys = provider()
    data_key = keys.unwrap(envelope.key_id, envelope.wrapped_key)
    key_id, wrapped = keys.wrap(data_key)
    return Envelope(envelope.algorithm, key_id, wrapped, envelope.sealed).dumps()


def blind_index(value: str, *, key_id: str | None = None) -> str:
    """HMAC-SHA256 of the normalised value under the blind-index key of `key_id` (default: the
    newest). Exact match only; the HMAC key is not any data key."""
    keys = provider()
    key = keys.index_key(key_id or keys.key_ids()[0])
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def blind_index_candidates(value: str) -> list[str]:
    """The value's index under every key, so a search finds rows not yet rotated too."""
    return [blind_index(value, key_id=key_id) for key_id in provider().key_ids()]
