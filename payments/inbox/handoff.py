"""The hand-off from a web process to the workers: new events are published by a thread of the
process, after the response, a message per batch of events rather than per event.

The request only puts the new row's id on an in-process queue (no broker round trip, not even
after the response: a sync server's worker would still wait for it before its next request).
The publisher thread takes whatever has gathered (GATHER_SECONDS after the first) and sends one
`process_webhook_event` message per BATCH_SIZE events: a worker's message applies a whole batch
of waiting events anyway (webhook_events_process_batch), so a message per event would mostly
find nothing left.

Nothing is lost if the process dies with ids still queued, or the broker refuses the message:
each row's next_attempt_at (ENQUEUE_GRACE after receipt) brings it to the sweep.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from config import request_id

log = logging.getLogger(__name__)

_pending: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()  # (event pk, request id)
_lock = threading.Lock()
_publisher: threading.Thread | None = None
_publisher_pid: int | None = None
# How to send one message for a batch starting at an id, and the batch size: given by the inbox
# (store.py), which knows the task; this module imports neither.
_send: Callable[[int], None] | None = None
_batch = 100


def publish_later(event_pk: int, *, send: Callable[[int], None], batch: int) -> None:
    """Queue a new event for the publisher thread (started on first use in each process: a
    thread does not survive the fork of a pre-forking server's workers)."""
    global _publisher, _publisher_pid, _send, _batch
    _send, _batch = send, batch
    if _publisher is None or _publisher_pid != os.getpid() or not _publisher.is_alive():
        with _lock:
            if _publisher is None or _publisher_pid != os.getpid() or not _publisher.is_alive():
                _publisher = threading.Thread(
                    target=_publish_forever, name="webhook-hand-off", daemon=True
                )
                _publisher_pid = os.getpid()
                _publisher.start()
    # With the request's id: the batch's message carries its first event's, so the worker's log
    # lines name the request that brought it (config.request_id).
    _pending.put((event_pk, request_id.current.get()))


def _gathered(first: tuple[int, str]) -> list[tuple[int, str]]:
    ids = [first]
    while True:
        try:
            ids.append(_pending.get_nowait())
        except queue.Empty:
            return ids


def publish_pending(first: tuple[int, str] | None = None) -> int:
    """Send what has gathered: one message per batch. Returns the messages sent."""
    if _send is None:
        return 0
    if first is None:
        try:
            first = _pending.get_nowait()
        except queue.Empty:
            return 0
    ids = sorted(_gathered(first))
    sent = 0
    for start in range(0, len(ids), _batch):
        event_pk, rid = ids[start]
        token = request_id.current.set(rid)
        try:
            _send(event_pk)
            sent += 1
        except Exception:
            log.exception(
                "webhook events %s..%s: processing not queued, the sweep will run them",
                event_pk,
                ids[min(start + _batch, len(ids)) - 1][0],
            )
        finally:
            request_id.current.reset(token)
    return sent


# Once an id arrives, the thread waits this long for others before it sends: under load one
# message then stands for many events, not one each (each message costs this process about half
# a millisecond of CPU with Redis, taken from the requests). Processing starts that much later.
GATHER_SECONDS = 0.05


def _publish_forever() -> None:
    while True:
        first = _pending.get()
        time.sleep(GATHER_SECONDS)
        publish_pending(first)


@atexit.register
def _flush_at_exit() -> None:
    # A server stopping gracefully sends what is left (the sweep would, a minute later).
    if _publisher_pid == os.getpid():
        publish_pending()
