"""Applying a batch of claimed events in few statements (issue 14, point 3).

A batch first runs all its events together under one savepoint: the payments they name are
read and locked in one query, the refunds in another (in id order, so two batches never wait
on each other in a cycle), the services' own atomic blocks open no savepoint of their own,
check constraints are left to the database, and the audit rows are gathered and appended per
chain when the last event is done. When an event raises, that savepoint is rolled back, the
events before it run together again, the failing event runs alone in its own savepoint as a
single run would (its outcome, failed or not, is the one it gets there), and the events after
it run together again. So a failing event never loses the others, and nothing it did half-way
is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from audits import chain
from audits.constraints import checks_left_to_database

from ..models import WebhookEvent
from ..services.gateway_reports import rows_held
from .handlers import handler_for, payment_named, refund_named

log = logging.getLogger(__name__)


class _LeftBroken(Exception):
    """An event caught a database error itself: its transaction can do nothing more."""


def events_apply(events: list[WebhookEvent]) -> dict[int, Exception | None]:
    """Run the handler of each event that has one, in order, inside the caller's transaction.
    Returns each handled event's failure (None when it took effect). A failure that leaves
    nothing writable (the connection is gone) propagates: the caller's batch rolls back."""
    outcomes: dict[int, Exception | None] = {}
    rest = [event for event in events if handler_for(event) is not None]
    while rest:
        failed_at = _run_together(rest)
        if failed_at is None:
            outcomes.update(dict.fromkeys((event.pk for event in rest), None))
            return outcomes
        if failed_at == _NO_EVENT:
            outcomes.update({event.pk: run_alone(event) for event in rest})
            return outcomes
        if failed_at > 0:
            outcomes.update(events_apply(rest[:failed_at]))
        failing = rest[failed_at]
        outcomes[failing.pk] = run_alone(failing)
        rest = rest[failed_at + 1 :]
    return outcomes


def run_alone(event: WebhookEvent) -> Exception | None:
    """The event's handler in its own savepoint, every statement as a single run makes it."""
    handler = handler_for(event)
    if handler is None:
        return None
    try:
        with transaction.atomic():
            handler(event)
    except Exception as exc:  # any failure is kept on the row and retried
        if transaction.get_rollback():
            # Not even the savepoint could be rolled back: the connection is gone, so
            # nothing of this attempt can be recorded. Not counted; retried as is.
            raise
        return exc
    return None


# What _run_together answers when what failed is no event's: locking the rows up front, or
# appending the gathered audit rows.
_NO_EVENT = -1


def _run_together(events: list[WebhookEvent]) -> int | None:
    """Run the events under one savepoint. None when all took effect; else the position of
    the first that raised (or _NO_EVENT), with the savepoint rolled back (nothing of any of
    them kept)."""
    position: int | None = None
    try:
        # The savepoint first, while savepoints are still made.
        with (
            transaction.atomic(),
            _savepoints_skipped(),
            rows_held(filter(None, map(payment_named, events)), map(refund_named, events)),
            chain.appends_gathered(),
            checks_left_to_database(),
        ):
            for position, event in enumerate(events):  # noqa: B007
                handler = handler_for(event)
                if handler is not None:  # always: the caller keeps only handled events
                    handler(event)
                if connection.needs_rollback:
                    raise _LeftBroken(f"event {event.pk} left its transaction broken")
            position = None  # the gathered audit rows are appended at the block's end
    except Exception:
        if transaction.get_rollback():
            raise  # the connection is gone: nothing can be recorded
        if position is None:
            log.warning(
                "batch of %s events: could not run them together, each runs alone",
                len(events),
                exc_info=True,
            )
            return _NO_EVENT
        return position
    return None


@contextmanager
def _savepoints_skipped() -> Iterator[None]:
    """Nested atomic blocks open no savepoint: an exception in one marks the transaction for
    rollback, which _run_together's own savepoint then takes back whole."""
    features = connection.features
    features.uses_savepoints = False
    try:
        yield
    finally:
        del features.uses_savepoints  # the class's value again
