"""What every `*_apply_gateway_state` service shares: the order of a gateway's reports, and the
error for a report that a person must look at.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db.models import Q

from audits.entries import remember_stored_before

from ..exceptions import PaymentsError
from ..models import Payment


class GatewayStateNeedsAttention(PaymentsError):
    """The gateway reports a state that our books must not follow on their own: money moved
    at the gateway in a way the state machine refuses (a captured payment whose settlement was
    declined, a refund that failed after it succeeded). Nothing is changed; the event fails
    with this message, so it stays visible with its error until a person settles it."""


def is_stale(newest_applied: Any, event_at: Any) -> bool:
    return event_at is not None and newest_applied is not None and event_at < newest_applied


def is_newer(newest_applied: Any, event_at: Any) -> bool:
    return event_at is not None and (newest_applied is None or event_at > newest_applied)


# The payments a batch of events locked up front, by id and by (gateway, reference).
_held: ContextVar[tuple[dict[int, Payment], dict[tuple[str, str], Payment]] | None] = ContextVar(
    "payments_held", default=None
)


@contextmanager
def payments_held(names: Iterable[tuple[str, str]]) -> Iterator[None]:
    """Read and lock, in one query and in id order, the payments named by (gateway, reference);
    within the block payment_locked and payment_held give those rows without asking again.
    Each is one instance that every change in the block saves, so it stays the stored row.
    Leave the block when the transaction rolls back: its rows are then no longer true."""
    wanted: dict[str, set[str]] = {}
    for gateway, reference in names:
        if reference:
            wanted.setdefault(gateway, set()).add(reference)
    condition = Q()
    for gateway, references in wanted.items():
        condition |= Q(gateway=gateway, gateway_reference__in=sorted(references))
    locked = Payment.objects.select_for_update().filter(condition).order_by("pk")
    rows = list(locked) if wanted else []
    token = _held.set(
        ({p.pk: p for p in rows}, {(p.gateway, p.gateway_reference): p for p in rows})
    )
    try:
        yield
    finally:
        _held.reset(token)


def payment_held(*, gateway: str, reference: str) -> Payment | None:
    held = _held.get()
    return None if held is None else held[1].get((gateway, reference))


def payment_locked(pk: int) -> Payment:
    """The payment, its row locked for the change a report makes (the instance a batch holds,
    if it does). The row as read under the lock is also the audit trail's before-state, so
    saving it does not read it again (a round trip per event on the webhook worker's path)."""
    held = _held.get()
    payment = held[0].get(pk) if held is not None else None
    if payment is None:
        payment = Payment.objects.select_for_update().get(pk=pk)
    remember_stored_before(payment, copy.copy(payment))
    return payment
