"""Stripe webhooks signed with Stripe's real scheme: t=<unix time>,v1=HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from django.test import Client

SECRET = "whsec_test_secret_for_the_suite"


def sign(payload: str, secret: str = SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }


def intent(reference: str, status: str, amount: int = 10_000) -> dict[str, Any]:
    return {
        "id": reference,
        "object": "payment_intent",
        "status": status,
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": "eur",
    }


def dispute(
    reference: str, intent_id: str, status: str, amount: int = 10_000, due_by: int | None = None
) -> dict[str, Any]:
    return {
        "id": reference,
        "object": "dispute",
        "payment_intent": intent_id,
        "charge": "ch_1",
        "amount": amount,
        "currency": "eur",
        "reason": "fraudulent",
        "status": status,
        "evidence_details": {"due_by": due_by or int(time.time()) + 86400},
    }


def post(
    client: Client,
    body: dict[str, Any] | str,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    header: str | None = None,
) -> Any:
    payload = body if isinstance(body, str) else json.dumps(body)
    signature = sign(payload, secret, timestamp) if header is None else header
    extra = {"HTTP_STRIPE_SIGNATURE": signature} if signature else {}
    return client.post("/webhooks/stripe/", data=payload, content_type="application/json", **extra)
