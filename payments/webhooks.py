"""The webhook inbox: verify a gateway's notification, store it once, process it after commit.

A verified event is stored (unique per provider and event id) before it is acknowledged, and
processed by a Celery task started when the row has committed. Processing can run any number
of times: the event row is locked, a finished event is left alone, and each handler applies the
gateway's state only when it moves a row forward.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .exceptions import PaymentsError
from .models import WebhookEvent

log = logging.getLogger(__name__)


class WebhookRejected(PaymentsError):
    """The request is not a notification we can trust or read: answer 400, store nothing."""


class WebhookNotConfigured(PaymentsError):
    """The gateway's webhook secret is not set: answer 503 so that the gateway retries later."""


class WebhookProcessingFailed(PaymentsError):
    pass


@dataclass(frozen=True)
class VerifiedEvent:
    provider: str
    event_id: str
    event_type: str
    payload: dict[str, Any]


# --- Stripe -------------------------------------------------------------------------------


def _stripe_timestamp(header: str) -> int:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    raise WebhookRejected("Stripe-Signature header has no timestamp")


def verify_stripe(*, body: bytes, signature_header: str) -> VerifiedEvent:
    secrets = settings.STRIPE_WEBHOOK_SECRET
    if not secrets:
        raise WebhookNotConfigured(
            "Stripe webhooks are disabled: STRIPE_WEBHOOK_SECRET is not set."
        )
    if not signature_header:
        raise WebhookRejected("missing Stripe-Signature header")
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE
    # The SDK accepts timestamps from the future; we don't, in either direction.
    if abs(time.time() - _stripe_timestamp(signature_header)) > tolerance:
        raise WebhookRejected(f"timestamp is more than {tolerance} seconds away from now")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookRejected("body is not UTF-8") from exc
    for secret in secrets:  # several during a rotation
        try:
            stripe.Webhook.construct_event(text, signature_header, secret, tolerance=tolerance)
            break
        except stripe.SignatureVerificationError:
            continue
        except ValueError as exc:
            raise WebhookRejected("body is not valid JSON") from exc
    else:
        raise WebhookRejected("signature does not match")
    payload = json.loads(text)
    event_id, event_type = payload.get("id"), payload.get("type")
    data = payload.get("data")
    if not (
        isinstance(event_id, str)
        and event_id
        and isinstance(event_type, str)
        and isinstance(data, dict)
        and isinstance(data.get("object"), dict)
    ):
        raise WebhookRejected("not a Stripe event: needs id, type and data.object")
    return VerifiedEvent("stripe", event_id[:255], event_type[:100], payload)


# --- Braintree ----------------------------------------------------------------------------


def _braintree_gateway() -> Any:
    from .gateways import GatewayNotConfigured
    from .gateways.braintree import BraintreeGateway

    try:
        return BraintreeGateway.from_settings().gateway
    except GatewayNotConfigured as exc:
        raise WebhookNotConfigured(str(exc)) from exc


def parse_braintree(*, signature: str, payload: str) -> Any:
    import braintree

    gateway = _braintree_gateway()
    if not signature or not payload:
        raise WebhookRejected("missing bt_signature or bt_payload")
    try:
        return gateway.webhook_notification.parse(signature, payload)
    except braintree.exceptions.InvalidSignatureError as exc:
        raise WebhookRejected(f"signature does not match ({exc})") from exc
    except Exception as exc:  # the SDK raises KeyError, ExpatError, UnicodeError on junk
        raise WebhookRejected(f"malformed notification ({type(exc).__name__})") from exc


def braintree_subject_id(notification: Any) -> str:
    for attribute in ("dispute", "transaction"):
        subject = getattr(notification, attribute, None)
        if subject is not None and getattr(subject, "id", None):
            return str(subject.id)
    return ""


def verify_braintree(*, signature: str, payload: str) -> VerifiedEvent:
    notification = parse_braintree(signature=signature, payload=payload)
    # Braintree notifications carry no id: this one is stable across redeliveries.
    timestamp = notification.timestamp.isoformat()
    subject = braintree_subject_id(notification)
    digest = hashlib.sha256(f"{notification.kind}|{subject}|{timestamp}".encode()).hexdigest()
    return VerifiedEvent(
        "braintree",
        f"bt_{digest[:40]}",
        notification.kind[:100],
        # The signed original is kept, so processing and replays re-verify and re-read it.
        {
            "kind": notification.kind,
            "subject_id": subject,
            "timestamp": timestamp,
            "bt_signature": signature,
            "bt_payload": payload,
        },
    )


# --- Inbox --------------------------------------------------------------------------------


def webhook_event_receive(event: VerifiedEvent) -> tuple[WebhookEvent, bool]:
    """Store a verified event once; start its processing after commit. Returns the row and
    whether it is new (a redelivery is acknowledged and not processed again)."""
    from .tasks import enqueue_webhook_event

    with transaction.atomic():
        stored, created = WebhookEvent.objects.get_or_create(
            provider=event.provider,
            event_id=event.event_id,
            defaults={"event_type": event.event_type, "payload": event.payload},
        )
        if created:
            # robust: a broker that is down must not turn an accepted webhook into an error;
            # the periodic sweep enqueues it once the broker is back.
            transaction.on_commit(lambda: enqueue_webhook_event(stored.pk), robust=True)
    return stored, created


def webhook_event_process(*, event_id: int) -> str:
    """Process one stored event. Safe to run again: a finished event is left as it is."""
    from .webhook_handlers import handler_for

    failure: Exception | None = None
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        if event.status in (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED):
            return event.status
        event.attempts += 1
        handler = handler_for(event)
        if handler is None:
            event.status = WebhookEvent.Status.IGNORED
        else:
            try:
                with transaction.atomic():
                    handler(event)
            except Exception as exc:  # any failure is kept on the row and retried
                failure = exc
        if failure is None:
            event.status = event.status if handler is None else WebhookEvent.Status.PROCESSED
            event.processed_at = timezone.now()
            event.last_error = ""
        else:
            event.status = WebhookEvent.Status.FAILED
            event.last_error = f"{type(failure).__name__}: {failure}"[:2000]
            log.warning(
                "webhook %s %s failed (attempt %s): %s",
                event.provider,
                event.event_id,
                event.attempts,
                event.last_error,
            )
        event.save()
    if failure is not None:
        raise WebhookProcessingFailed(event.last_error) from failure
    return event.status
