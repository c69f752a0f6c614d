"""`Idempotency-Key`, as Stripe does it: a retry with the same key and body gets the first
answer again (kept 24 hours); the same key with another body is a 422; a retry while the
first request is still running is a 409.

A key belongs to its caller and endpoint: the token's owner and scope ('merchant:<id>' for a
merchant-bound token, 'staff' otherwise), so two merchants' tokens of one owner never see each
other's answers, and a key used for a payment means nothing to a refund.

The race between two requests with one key is decided by the database: both try to insert the
record, the unique constraint lets one through, and the other reads what the first left.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.response import Response

from ..core.errors import DomainError
from ..models import IdempotencyRecord
from .errors import api_exception_handler, error_body
from .permissions import merchant_scope

HEADER = "Idempotency-Key"
KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255


def fingerprint(request: Any) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def caller_scope(request: Any) -> str:
    merchant_id = merchant_scope(request)
    return f"merchant:{merchant_id}" if merchant_id is not None else "staff"


def client_key(request: Any) -> str:
    """What a payment created with this request's key is stored under (Payment.client_key):
    a SHA-256 of the caller (owner and scope) and the key, so a retry finds that payment again
    and no other caller's."""
    key = request.headers.get(HEADER, "")
    if not key:
        return ""
    caller = f"{request.user.pk}\n{caller_scope(request)}\n{key}"
    return hashlib.sha256(caller.encode()).hexdigest()


def _claim(
    *, owner: Any, scope: str, key: str, endpoint: str, digest: str
) -> IdempotencyRecord | None:
    """Insert our in-flight record; None if another request holds the key already."""
    try:
        with transaction.atomic():
            # A record older than KEEP_FOR is forgotten: the key may be used afresh.
            IdempotencyRecord.objects.filter(
                owner=owner,
                scope=scope,
                endpoint=endpoint,
                key=key,
                created_at__lt=timezone.now() - KEEP_FOR,
            ).delete()
            return IdempotencyRecord.objects.create(
                owner=owner, scope=scope, key=key, endpoint=endpoint, fingerprint=digest
            )
    except IntegrityError:
        return None


def idempotent(request: Any, view: Any, run: Callable[[], Response]) -> Response:
    """Answer with `run()` once per key; replay its answer to retries."""
    key = request.headers.get(HEADER, "")
    if not key:
        return Response(
            error_body(
                "idempotency_key_missing",
                f"Send an {HEADER} header: a unique value per operation, reused on retries.",
                {HEADER: ["This header is required."]},
            ),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if len(key) > MAX_KEY_LENGTH:
        return Response(
            error_body(
                "validation_error",
                "The request is not valid.",
                {HEADER: [f"At most {MAX_KEY_LENGTH} characters."]},
            ),
            status=status.HTTP_400_BAD_REQUEST,
        )
    owner, scope, digest = request.user, caller_scope(request), fingerprint(request)
    endpoint = f"{request.method} {request.path}"[:200]
    caller = {"owner": owner, "scope": scope, "key": key, "endpoint": endpoint}
    record = _claim(**caller, digest=digest)
    if record is None:
        earlier = IdempotencyRecord.objects.filter(**caller).first()
        if earlier is None:  # it was released (the first attempt failed): try again
            record = _claim(**caller, digest=digest)
        elif earlier.fingerprint != digest:
            return Response(
                error_body(
                    "idempotency_key_reused",
                    f"This {HEADER} was used with another request; use a new key.",
                ),
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        elif earlier.in_flight:
            return Response(
                error_body(
                    "idempotency_in_flight",
                    f"A request with this {HEADER} is still being processed; retry later.",
                ),
                status=status.HTTP_409_CONFLICT,
                headers={"Retry-After": "1"},
            )
        else:
            replay = Response(earlier.response_body, status=earlier.response_status)
            replay["Idempotent-Replayed"] = "true"
            return replay
        if record is None:
            return Response(
                error_body("idempotency_in_flight", "Retry later."),
                status=status.HTTP_409_CONFLICT,
                headers={"Retry-After": "1"},
            )
    try:
        response = run()
    except DomainError as exc:
        # A refusal by the rules is an answer: the retry gets the same one.
        # Never None: the handler answers every error, a DomainError with its own status.
        response = cast(Response, api_exception_handler(exc, {"view": view, "request": request}))
    except BaseException:
        # Unknown outcome (a crash, a gateway timeout): free the key so a retry runs again;
        # the retry finds the payment row by its client key and reuses its gateway key.
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        raise
    if response.status_code >= 500:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return response
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        in_flight=False, response_status=response.status_code, response_body=response.data
    )
    return response
