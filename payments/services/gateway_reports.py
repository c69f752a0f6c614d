"""What every `*_apply_gateway_state` service shares: the order of a gateway's reports, and the
error for a report that a person must look at.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from audits.entries import remember_stored_before

from ..exceptions import PaymentsError
from ..models import Payment, Refund


class GatewayStateNeedsAttention(PaymentsError):
    """The gateway reports a state that our books must not follow on their own: money moved
    at the gateway in a way the state machine refuses (a captured payment whose settlement was
    declined, a refund that failed after it succeeded). Nothing is changed; the event fails
    with this message, so it stays visible with its error until a person settles it."""


def is_stale(newest_applied: Any, event_at: Any) -> bool:
    return event_at is not None and newest_applied is not None and event_at < newest_applied


def is_newer(newest_applied: Any, event_at: Any) -> bool:
    return event_at is not None and (newest_applied is None or event_at > newest_applied)


@dataclass
class _Held:
    """The rows a batch of events locked up front."""

    payments: dict[int, Payment]
    payments_by_reference: dict[tuple[str, str], Payment]
    # Every refund reference the batch looked for: its row, or None where there is none yet.
    refunds: dict[str, Refund | None]


_held: ContextVar[_Held | None] = ContextVar("rows_held", default=None)


@contextmanager
def rows_held(payments: Iterable[tuple[str, str]], refunds: Iterable[str] = ()) -> Iterator[None]:
    """Read and lock the payments named by (gateway, reference), then the refunds named by
    their gateway reference, one query each, in id order (payments before refunds, as every
    service locks them). Within the block payment_locked, payment_held and refund_held give
    those rows without asking again; each is the one instance every change in the block
    saves, so it stays the stored row, and a refund created in the block is added
    (refund_now_held). Leave the block when the transaction rolls back: its rows are then no
    longer true."""
    wanted: dict[str, set[str]] = {}
    for gateway, reference in payments:
        if reference:
            wanted.setdefault(gateway, set()).add(reference)
    condition = Q()
    for gateway, references in wanted.items():
        condition |= Q(gateway=gateway, gateway_reference__in=sorted(references))
    locked = Payment.objects.select_for_update().filter(condition).order_by("pk")
    rows = list(locked) if wanted else []
    refund_references = sorted(set(filter(None, refunds)))
    found: dict[str, Refund | None] = dict.fromkeys(refund_references)
    if refund_references:
        for refund in (
            Refund.objects.select_for_update()
            .filter(gateway_reference__in=refund_references)
            .order_by("pk")
        ):
            found[refund.gateway_reference or ""] = refund
    token = _held.set(
        _Held(
            payments={p.pk: p for p in rows},
            payments_by_reference={(p.gateway, p.gateway_reference): p for p in rows},
            refunds=found,
        )
    )
    try:
        yield
    finally:
        _held.reset(token)


def payment_held(*, gateway: str, reference: str) -> Payment | None:
    held = _held.get()
    return None if held is None else held.payments_by_reference.get((gateway, reference))


def refund_held(reference: str) -> tuple[bool, Refund | None]:
    """(whether the batch looked for this refund reference, its locked row if there is one)."""
    held = _held.get()
    if held is None or reference not in held.refunds:
        return False, None
    return True, held.refunds[reference]


def refund_now_held(refund: Refund, reference: str) -> None:
    """The refund a report about `reference` found or created inside rows_held: later events
    of the block find this instance (and no stale one) under that reference."""
    held = _held.get()
    if held is not None and reference:
        held.refunds[reference] = refund


def payment_locked(pk: int) -> Payment:
    """The payment, its row locked for the change a report makes (the instance a batch holds,
    if it does). The row as read under the lock is also the audit trail's before-state, so
    saving it does not read it again (a round trip per event on the webhook worker's path)."""
    held = _held.get()
    payment = held.payments.get(pk) if held is not None else None
    if payment is None:
        payment = Payment.objects.select_for_update().get(pk=pk)
    remember_stored_before(payment, copy.copy(payment))
    return payment
