"""Rate limits per token (or signed-in user) and per client IP, counted in the cache."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from .permissions import token_of


class _SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        # Read at each request (not at import), so settings and tests can change it.
        if self.scope is None:
            return None
        return settings.API_THROTTLE_RATES.get(self.scope)


class TokenRateThrottle(_SettingsRateThrottle):
    scope = "token"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        token = token_of(request)
        if token is not None:
            ident = f"token-{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}


class IPRateThrottle(_SettingsRateThrottle):
    """Checked before authentication, so guessing tokens is limited too."""

    scope = "ip"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        audit_context = getattr(request._request, "audit_context", None)
        ident = audit_context.ip_address if audit_context else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
