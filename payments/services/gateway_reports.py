"""What every `*_apply_gateway_state` service shares: the order of a gateway's reports, and the
error for a report that a person must look at.
"""

from __future__ import annotations

import copy
from typing import Any

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


def payment_locked(pk: int) -> Payment:
    """The payment, its row locked for the change a report makes. The row as read under the
    lock is also the audit trail's before-state, so saving it does not read it again (a round
    trip per event saved on the webhook worker's hot path)."""
    payment = Payment.objects.select_for_update().get(pk=pk)
    remember_stored_before(payment, copy.copy(payment))
    return payment
