"""What staff read when a gateway cannot do what they asked.

A configuration problem (a gateway without credentials) is the administrator's to fix, not the
person's on the screen: they read "Stripe is not configured; ask an administrator" and the
details (which variable is missing) go to the log. Anything else the gateway answered is its
own reason, which staff need (a refused refund, a declined evidence upload).
"""

from __future__ import annotations

import logging

from .gateways import GatewayError, GatewayNotConfigured
from .models import Gateway

log = logging.getLogger(__name__)


def gateway_label(name: str) -> str:
    return str(Gateway(name).label) if name in Gateway.values else (name or "The gateway")


def not_configured_message(gateway: str) -> str:
    return f"{gateway_label(gateway)} is not configured; ask an administrator."


def staff_message(exc: GatewayError, *, gateway: str = "") -> str:
    """The sentence for the screen (and the refund's failure reason); the log keeps the rest."""
    if isinstance(exc, GatewayNotConfigured):
        log.warning("gateway not configured: %s", exc)
        return not_configured_message(exc.gateway or gateway)
    name = exc.gateway or gateway
    text = str(exc).removeprefix(f"{exc.gateway}: ") if exc.gateway else str(exc)
    return f"{gateway_label(name)}: {text}" if name else text
