"""/webhooks/stripe/, /webhooks/braintree/ and /webhooks/sandbox/: verify, store, acknowledge.

Not wrapped in a request-wide transaction: the event is stored by one autocommitted statement
(webhook_event_store) before the 200 goes back. Nothing else happens before the answer: its
processing is queued after the response has been sent (AcknowledgedThenHandedOff), so the
gateway never waits on the broker. A database failure propagates as a 500 so that the gateway
delivers again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .store import (
    Stored,
    webhook_event_hand_off,
    webhook_event_receive,
    webhook_processing_in_process,
)
from .verify import (
    SANDBOX,
    STRIPE,
    SignedLikeStripe,
    VerifiedEvent,
    WebhookNotConfigured,
    WebhookRejected,
    verify_braintree,
)

log = logging.getLogger(__name__)


def _receive(
    request: HttpRequest, provider: str, verify: Callable[[HttpRequest], VerifiedEvent]
) -> JsonResponse:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    try:
        if declared > settings.WEBHOOK_MAX_BYTES or len(request.body) > settings.WEBHOOK_MAX_BYTES:
            raise WebhookRejected(f"body is larger than {settings.WEBHOOK_MAX_BYTES} bytes")
        event = verify(request)
    except RequestDataTooBig:
        return _refuse(provider, request, "body is too large")
    except WebhookRejected as exc:
        return _refuse(provider, request, str(exc))
    except WebhookNotConfigured as exc:
        log.error("%s webhook refused: %s", provider, exc)
        return JsonResponse({"error": str(exc)}, status=503)
    except Exception:
        # Verifying touches no database: whatever else fails here failed on the body's content,
        # which is never a reason for a 5xx (the gateway would resend it for days).
        log.exception("%s webhook: unreadable notification", provider)
        return _refuse(provider, request, "the notification could not be read")
    # The address the audit middleware settled on (a trusted proxy's X-Forwarded-For, else the
    # peer): the same one the audit trail records for this request.
    audit_context = getattr(request, "audit_context", None)
    # With a broker, the processing is queued after the response (below). Without one (tasks
    # run in-process: the demo) there is no later to hand off to: the event is processed after
    # its commit, before the answer, in the order the gateway sent it.
    in_process = webhook_processing_in_process()
    stored = webhook_event_receive(
        event, source_ip=audit_context.ip_address if audit_context else None, hand_off=in_process
    )
    response = AcknowledgedThenHandedOff(stored)
    response.handed_off = in_process
    return response


class AcknowledgedThenHandedOff(JsonResponse):
    """The acknowledgement; a new event's processing is queued when the response is closed.

    A WSGI server closes the response after it has written it (PEP 3333): only then is the new
    event handed to this process's publisher thread (handoff.py), which sends the broker one
    message per batch of events. If this process dies before it publishes, the row's
    next_attempt_at brings the event to the sweep (webhook_events_sweep)."""

    def __init__(self, stored: Stored) -> None:
        super().__init__(
            {"received": True, "event_id": stored.event_id, "duplicate": not stored.created}
        )
        self.stored = stored
        self.handed_off = False

    def close(self) -> None:
        # Before super().close(): its request_finished signal may close the database
        # connection, which an in-process (eager) run of the task would then reopen.
        if self.stored.created and not self.handed_off:
            self.handed_off = True
            stored = self.stored
            # Outside a transaction (always, in production) this runs at once; a test that
            # wraps the request in one sees it as the after-commit callback it stands for.
            transaction.on_commit(lambda: webhook_event_hand_off(stored), robust=True)
        super().close()


def _refuse(provider: str, request: HttpRequest, reason: str) -> JsonResponse:
    # Logged without the body: it may carry customer details.
    audit_context = getattr(request, "audit_context", None)
    log.warning(
        "%s webhook rejected from %s: %s",
        provider,
        audit_context and audit_context.ip_address,
        reason,
    )
    return JsonResponse({"error": reason}, status=400)


def _signed_like_stripe(gateway: SignedLikeStripe) -> Callable[[HttpRequest], VerifiedEvent]:
    return lambda r: gateway.verify(body=r.body, signature_header=r.headers.get(gateway.header, ""))


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    return _receive(request, "stripe", _signed_like_stripe(STRIPE))


@csrf_exempt
@require_POST
def braintree_webhook(request: HttpRequest) -> JsonResponse:
    return _receive(
        request,
        "braintree",
        lambda r: verify_braintree(
            signature=r.POST.get("bt_signature", ""),
            payload=r.POST.get("bt_payload", ""),
            raw_body=r.body,
        ),
    )


@csrf_exempt
@require_POST
def sandbox_webhook(request: HttpRequest) -> JsonResponse:
    """The sandbox gateway's events (DEBUG only: 503 when the sandbox is off)."""
    return _receive(request, "sandbox", _signed_like_stripe(SANDBOX))
