"""Ed25519 keys for the audit trail's signed checkpoints (audits/checkpoints.py).

`AUDIT_CHECKPOINT_SIGNING_KEY` is the 32-byte private key (seed) in URL-safe base64;
`AUDIT_CHECKPOINT_PUBLIC_KEYS` the public keys a checkpoint may be verified with, newest first,
so that a signing key can rotate while checkpoints signed with the old one still verify. A key
is named by its id: the first 16 hex digits of the SHA-256 of the raw public key. Messages name
key ids, never key material. No Django models here: config/settings.py validates with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.exceptions import ImproperlyConfigured

# The development key config/settings.py derives with DEBUG on and no key set: never deployed.
_DEV_SEED_LABEL = b"dev-only-audit-checkpoint-signing-key-not-for-production"


def dev_signing_key() -> str:
    return encode(hashlib.sha256(_DEV_SEED_LABEL).digest())


def encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode(text: str, what: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ImproperlyConfigured(f"{what} is not URL-safe base64.") from exc
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{what} decodes to {len(raw)} bytes; 32 are needed.")
    return raw


def private_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_decode(text, "AUDIT_CHECKPOINT_SIGNING_KEY"))


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_of(signing_key: str) -> str:
    """The public key (URL-safe base64) that verifies what `signing_key` signs."""
    return encode(public_bytes(private_key(signing_key).public_key()))


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def public_keys(texts: Sequence[str]) -> dict[str, Ed25519PublicKey]:
    """Key id -> public key, in the configured order (newest first). A malformed or repeated
    key stops start-up."""
    keys: dict[str, Ed25519PublicKey] = {}
    for position, text in enumerate(texts, start=1):
        raw = _decode(text, f"AUDIT_CHECKPOINT_PUBLIC_KEYS key #{position}")
        kid = key_id(raw)
        if kid in keys:
            raise ImproperlyConfigured(f"AUDIT_CHECKPOINT_PUBLIC_KEYS key #{position} is repeated.")
        keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


def check_configuration(signing_key: str, verify_keys: Sequence[str]) -> None:
    """Stop start-up when checkpoints signed now could not be verified with the keys given."""
    signer = key_id(_decode(public_key_of(signing_key), "the signing key's public key"))
    if signer not in public_keys(verify_keys):
        raise ImproperlyConfigured(
            f"AUDIT_CHECKPOINT_PUBLIC_KEYS lacks the public key of AUDIT_CHECKPOINT_SIGNING_KEY "
            f"(key id {signer}): put it first, followed by the keys being retired."
        )


def sign(signing_key: str, message: bytes) -> tuple[str, str]:
    """(key id, signature in URL-safe base64)."""
    key = private_key(signing_key)
    return key_id(public_bytes(key.public_key())), encode(key.sign(message))


class SignatureRefused(Exception):
    """The signature is malformed, made with a key not configured, or does not match."""


def verify(verify_keys: Sequence[str], kid: str, signature: str, message: bytes) -> None:
    keys = public_keys(verify_keys)
    if kid not in keys:
        raise SignatureRefused(
            f"signed with key {kid}, which is not in AUDIT_CHECKPOINT_PUBLIC_KEYS (a forged "
            f"checkpoint, or a key retired while its checkpoints are still needed)"
        )
    try:
        raw = base64.urlsafe_b64decode(signature.encode("ascii"))
        keys[kid].verify(raw, message)
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise SignatureRefused(
            f"the signature does not verify with key {kid}: the checkpoint was forged or "
            f"altered after signing"
        ) from exc
