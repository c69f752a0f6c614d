"""API tokens: issue, revoke, authenticate.

A token reads `bo_<prefix>_<secret>`. The prefix finds the row; the SHA-256 of the whole token
is compared in constant time. The full token exists only in the answer to its creation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from rest_framework import authentication, exceptions

from audits import context

from ..core.records import create_valid
from ..models import ApiToken, Merchant

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger("payments.api.auth")

TOKEN_PREFIX = "bo_"  # noqa: S105  # nosec B105


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_create(
    *,
    owner: User,
    name: str,
    scopes: list[str],
    merchant: Merchant | None = None,
    hours: int | None = None,
    actor: User | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its full text, which is never stored and cannot be shown again."""
    unknown = sorted(set(scopes) - set(ApiToken.SCOPES))
    if unknown:
        raise ValidationError({"scopes": [f"unknown scopes: {', '.join(unknown)}"]})
    if not scopes:
        raise ValidationError({"scopes": ["give at least one scope"]})
    maximum = settings.API_TOKEN_MAX_HOURS
    hours = settings.API_TOKEN_DEFAULT_HOURS if hours is None else hours
    if not 1 <= hours <= maximum:
        raise ValidationError({"hours": [f"between 1 and {maximum} hours"]})
    prefix = secrets.token_hex(6)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic(), context.bind(actor=actor or owner):
        token = create_valid(
            ApiToken(
                name=name,
                prefix=prefix,
                digest=_hash(raw),
                owner=owner,
                merchant=merchant,
                scopes=sorted(set(scopes)),
                expires_at=timezone.now() + timedelta(hours=hours),
            )
        )
    return token, raw


def api_token_revoke(*, token: ApiToken, actor: User | None = None) -> ApiToken:
    with transaction.atomic(), context.acting(actor):
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save()
        return token


def api_token_record_use(*, token: ApiToken, ip_address: str) -> None:
    # Excluded from the audit trail (bookkeeping, not a change), so this writes no audit row.
    with transaction.atomic():
        token.last_used_at, token.last_used_ip = timezone.now(), ip_address
        token.save(update_fields=["last_used_at", "last_used_ip"])


class TokenRefused(exceptions.AuthenticationFailed):
    pass


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer bo_<prefix>_<secret>`."""

    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0] != self.keyword:
            return None
        if len(parts) != 2:
            raise self._refuse(request, "malformed Authorization header", prefix="")
        raw = parts[1]
        prefix = raw[len(TOKEN_PREFIX) :].split("_", 1)[0] if raw.startswith(TOKEN_PREFIX) else ""
        token = (
            ApiToken.objects.select_related("owner", "merchant")
            # Whether the owner has a role, in the same query: HasScope holds such a token to it.
            .annotate(owner_has_role=Exists(Group.objects.filter(user=OuterRef("owner_id"))))
            .filter(prefix=prefix)
            .first()
            if prefix
            else None
        )
        # Compare even when nothing was found, so timing does not tell known prefixes apart.
        expected = token.digest if token is not None else "0" * 64
        if not hmac.compare_digest(expected, _hash(raw)) or token is None:
            raise self._refuse(request, "unknown token", prefix=prefix)
        if token.revoked_at is not None:
            raise self._refuse(request, "token revoked", prefix=prefix)
        if token.expires_at <= timezone.now():
            raise self._refuse(request, "token expired", prefix=prefix)
        if not token.owner.is_active:
            raise self._refuse(request, "token owner is deactivated", prefix=prefix)
        audit_context = getattr(request._request, "audit_context", None) or context.current()
        api_token_record_use(token=token, ip_address=audit_context.ip_address)
        # The audit trail names the token next to its owner (the actor, read from request.user).
        bound = dataclasses.replace(audit_context, token_id=token.pk)
        request._request.audit_context = bound
        context.push(bound)  # reset with the middleware's own token at the end of the request
        return token.owner, token

    def authenticate_header(self, request: Any) -> str:
        return self.keyword

    def _refuse(self, request: Any, reason: str, *, prefix: str) -> TokenRefused:
        audit_context = getattr(request._request, "audit_context", None)
        logger.warning(
            "api token refused: %s (prefix=%s ip=%s path=%s)",
            reason,
            prefix[:16] or "-",
            getattr(audit_context, "ip_address", "-"),
            request._request.path,
        )
        return TokenRefused(reason)
