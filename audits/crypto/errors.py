"""What the crypto kernel raises. Messages name key ids, never key material or plaintext."""

from __future__ import annotations


class CryptoError(Exception):
    pass


class DecryptionFailed(CryptoError):
    """The ciphertext or its wrapped data key was altered, or belongs to another field."""


class UnknownKey(CryptoError):
    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"Key {key_id!r} is not in the key provider: it was retired while values still use "
            f"it (run `manage.py key_status`), or the keys are misconfigured."
        )
        self.key_id = key_id


class MalformedEnvelope(CryptoError):
    pass


class SubjectErased(CryptoError):
    """The value belongs to a person whose data key was destroyed (erasure, GDPR art. 17)."""
