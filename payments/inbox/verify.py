"""A gateway's notification, verified: Stripe's signed JSON (HMAC over the timestamp and the
raw body, within the tolerance), the sandbox gateway's (signed the same way) and Braintree's
signed payload, parsed strictly (no NaN, no deep nesting, no lone surrogates) into a
VerifiedEvent. Nothing here writes."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.http import QueryDict
from django.utils import timezone

from ..exceptions import PaymentsError
from ..models import WebhookEvent

# Stripe's events nest a few levels (event, data, object, a list, its items, metadata). Anything
# much deeper is not an event, and would blow the recursion limit of json or of the database
# driver's encoder: refused before it gets there.
MAX_JSON_DEPTH = 64


_SURROGATE = re.compile("[\ud800-\udfff]")


class WebhookRejected(PaymentsError):
    """The request is not a notification we can trust or read: answer 400, store nothing."""


class WebhookNotConfigured(PaymentsError):
    """The gateway's webhook secret is not set: answer 503 so that the gateway retries later."""


@dataclass(frozen=True)
class VerifiedEvent:
    provider: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    raw_body: str = ""
    signature: str = ""
    event_created_at: datetime.datetime | None = None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: JSONB refuses them


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")  # 1e999: would be stored as Infinity
    return value


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def storable_text(text: str) -> str:
    """What PostgreSQL can hold of a string: a NUL becomes the six characters `\\u0000` (JSONB
    and text refuse the character itself), a lone UTF-16 surrogate becomes U+FFFD (it cannot be
    encoded as UTF-8)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    return _SURROGATE.sub("\ufffd", text)


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def parse_json_object(text: str) -> dict[str, Any]:
    """Parse an untrusted body into something the database can store, or refuse it."""
    try:
        parsed = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise WebhookRejected("body is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, NaN, 1e999, an integer of 5000 digits
        raise WebhookRejected(f"body is not valid JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        kind = {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
            type(parsed), "a number"
        )
        raise WebhookRejected(f"not a Stripe event: the body is {kind}, not a JSON object")
    if _depth(parsed) > MAX_JSON_DEPTH:
        raise WebhookRejected(f"body is nested more than {MAX_JSON_DEPTH} levels deep")
    if "\\u" in text:
        # Only an escape can put a NUL or a lone surrogate in a string: strict JSON refuses a
        # raw NUL, and text decoded from UTF-8 holds no surrogate. Without one, nothing to mend.
        parsed = _storable(parsed)
    return cast(dict[str, Any], parsed)  # a JSON object, checked above


def _unix_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _stripe_timestamp(header: str, name: str = "Stripe-Signature") -> int:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    raise WebhookRejected(f"{name} header has no timestamp")


def _signed_with_one_of(text: str, signature_header: str, secrets: list[str]) -> bool:
    """Stripe's v1 scheme, as its SDK checks it: the header's timestamp `t` and one or more
    `v1` signatures (Stripe sends two while a secret is rolled); one of them must be the hex
    HMAC-SHA256 of "<t>.<body>" under one of our secrets (several during a rotation). The
    timestamp's age is the caller's to check. Computed here with hmac, not by the SDK: the
    same arithmetic without its header parsing and exception per secret that does not match."""
    timestamp, sent = None, []
    for part in signature_header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and timestamp is None:
            timestamp = int(value) if value.isdigit() else -1
        elif key == "v1" and value:
            sent.append(value)
    if timestamp is None or timestamp < 0 or not sent:
        return False
    signed = f"{timestamp}.{text}".encode()
    for secret in secrets:
        if not secret.strip():
            continue
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
        # As bytes: compare_digest refuses a str with other than ASCII in it (a header can).
        if any(hmac.compare_digest(expected, value.encode()) for value in sent):
            return True
    return False


@dataclass(frozen=True)
class SignedLikeStripe:
    """A gateway that signs as Stripe signs: its name, its header, the secrets configured for it
    (read when used: settings change in tests) and whether its webhooks are accepted."""

    provider: str
    label: str
    header: str
    secrets: Callable[[], list[str]]
    enabled: Callable[[], bool]
    disabled: str  # why it refuses, when not enabled or without a secret

    def verify(self, *, body: bytes, signature_header: str) -> VerifiedEvent:
        secrets = self.secrets()
        if not (secrets and self.enabled()):
            raise WebhookNotConfigured(self.disabled)
        return _verify_signed_like_stripe(
            provider=self.provider,
            label=self.label,
            header=self.header,
            body=body,
            signature_header=signature_header,
            matches=lambda text, header: _signed_with_one_of(text, header, secrets),
        )


STRIPE = SignedLikeStripe(
    provider="stripe",
    label="Stripe",
    header="Stripe-Signature",
    secrets=lambda: list(settings.STRIPE_WEBHOOK_SECRET),
    enabled=lambda: True,
    disabled="Stripe webhooks are disabled: STRIPE_WEBHOOK_SECRET is not set.",
)
SANDBOX = SignedLikeStripe(
    provider="sandbox",
    label="sandbox",
    header="Sandbox-Signature",
    secrets=lambda: [settings.SANDBOX_WEBHOOK_SECRET] if settings.SANDBOX_WEBHOOK_SECRET else [],
    enabled=lambda: bool(settings.SANDBOX_ENABLED),
    disabled="Sandbox webhooks are disabled: SANDBOX_ENABLED is off (never on in production).",
)


def verify_stripe(*, body: bytes, signature_header: str) -> VerifiedEvent:
    return STRIPE.verify(body=body, signature_header=signature_header)


def verify_sandbox(*, body: bytes, signature_header: str) -> VerifiedEvent:
    """The sandbox gateway's events, signed as Stripe signs with SANDBOX_WEBHOOK_SECRET in a
    `Sandbox-Signature` header, and shaped like Stripe's events."""
    return SANDBOX.verify(body=body, signature_header=signature_header)


def _verify_signed_like_stripe(
    *,
    provider: str,
    label: str,
    header: str,
    body: bytes,
    signature_header: str,
    matches: Callable[[str, str], bool],
) -> VerifiedEvent:
    """An event signed as Stripe signs (HMAC-SHA256 over "t.body" in a `t=...,v1=...` header,
    within the tolerance either way) and shaped as Stripe's events (id, type, data.object)."""
    if not signature_header:
        raise WebhookRejected(f"missing {header} header")
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE
    # Stripe's SDK accepts timestamps from the future; we don't, in either direction.
    if abs(time.time() - _stripe_timestamp(signature_header, header)) > tolerance:
        raise WebhookRejected(f"timestamp is more than {tolerance} seconds away from now")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookRejected("body is not UTF-8") from exc
    if not matches(text, signature_header):
        raise WebhookRejected("signature does not match")
    # Parsed by us, not by stripe.Webhook.construct_event: its Event object recurses once per
    # level (100,000 nested arrays: RecursionError, a 500) and we need only the plain dict.
    payload = parse_json_object(text)
    event_id, event_type = payload.get("id"), payload.get("type")
    data = payload.get("data")
    if not (
        isinstance(event_id, str)
        and event_id
        and isinstance(event_type, str)
        and isinstance(data, dict)
        and isinstance(data.get("object"), dict)
    ):
        raise WebhookRejected(f"not a {label} event: needs id, type and data.object")
    return VerifiedEvent(
        provider,
        event_id[:255],
        event_type[:100],
        payload,
        # Valid JSON holds no raw NUL, so this is the body byte for byte.
        raw_body=text,
        signature=storable_text(signature_header),
        event_created_at=_unix_time(payload.get("created")),
    )


def _braintree_gateway() -> Any:
    from ..gateways import GatewayNotConfigured
    from ..gateways.braintree import BraintreeGateway

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


def _aware(moment: Any) -> datetime.datetime | None:
    if not isinstance(moment, datetime.datetime):
        return None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=datetime.UTC)


def verify_braintree(*, signature: str, payload: str, raw_body: bytes = b"") -> VerifiedEvent:
    notification = parse_braintree(signature=signature, payload=payload)
    kind, timestamp = getattr(notification, "kind", None), getattr(notification, "timestamp", None)
    if not isinstance(kind, str) or not kind or timestamp is None or _aware(timestamp) is None:
        # Signed, so from Braintree (or whoever holds our key), but not a notification we read.
        raise WebhookRejected("malformed notification (no kind or timestamp)")
    # Braintree notifications carry no id: this one is stable across redeliveries.
    subject = storable_text(braintree_subject_id(notification))
    stamp = timestamp.isoformat()
    digest = hashlib.sha256(f"{kind}|{subject}|{stamp}".encode()).hexdigest()
    return VerifiedEvent(
        "braintree",
        f"bt_{digest[:40]}",
        storable_text(kind)[:100],
        # The signed original is kept, so processing and replays re-verify and re-read it.
        {
            "kind": storable_text(kind),
            "subject_id": subject,
            "timestamp": stamp,
            "bt_signature": storable_text(signature),
            "bt_payload": storable_text(payload),
        },
        raw_body=storable_text(raw_body.decode("utf-8", "backslashreplace")),
        signature=storable_text(signature),
        event_created_at=_aware(timestamp),
    )


def webhook_event_reverify(event: WebhookEvent) -> bool | None:
    """Check a stored event again against the secrets configured now: its signature over the
    raw body, and that the parsed copy we processed is that body. None when it cannot be told
    (stored before the evidence was kept, or the gateway is not configured any more)."""
    if not event.raw_body or not event.signature:
        return None
    signed_like_stripe = {"stripe": STRIPE, "sandbox": SANDBOX}.get(event.provider)
    if signed_like_stripe is not None:
        secrets = signed_like_stripe.secrets()
        if not secrets:
            return None
        if not _signed_with_one_of(event.raw_body, event.signature, secrets):
            return False
        try:
            return bool(parse_json_object(event.raw_body) == event.payload)
        except WebhookRejected:
            return False
    bt_payload = event.payload.get("bt_payload", "")
    # Braintree posts a urlencoded form; a multipart one carries the payload as it is.
    in_body = QueryDict(event.raw_body).get("bt_payload") == bt_payload or (
        bool(bt_payload) and bt_payload in event.raw_body
    )
    if not in_body:
        return False
    try:
        parse_braintree(signature=event.signature, payload=bt_payload)
    except WebhookNotConfigured:
        return None
    except WebhookRejected:
        return False
    return True
