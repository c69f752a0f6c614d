"""Envelopes in audit rows shown as their plaintext, for the people allowed to read the trail
(screens, the API, the CSV export). The rows keep the envelopes; the evidence file does too,
so that its hashes verify. A value whose key is gone reads as UNREADABLE, a value of an
erased person as ERASED, not as an error."""

from __future__ import annotations

from typing import Any

from . import envelope
from .errors import CryptoError, SubjectErased
from .fields import ERASED

UNREADABLE = "(encrypted: unreadable)"


def reveal(value: Any, *, context: str) -> Any:
    if not envelope.is_envelope(value):
        return value
    try:
        return envelope.decrypt(value, context=context)
    except SubjectErased:
        return ERASED
    except CryptoError:
        return UNREADABLE


def reveal_state(object_type: str, state: dict[str, Any] | None) -> dict[str, Any] | None:
    """A before/after state of a `payment_audits` row (object type: app_label.model)."""
    if state is None:
        return None
    return {key: reveal(value, context=f"{object_type}.{key}") for key, value in state.items()}


def reveal_changes(object_type: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A django-auditlog entry's changes: {field: [old, new]}."""
    return {
        key: [reveal(value, context=f"{object_type}.{key}") for value in pair]
        if isinstance(pair, list | tuple)
        else pair
        for key, pair in changes.items()
    }
