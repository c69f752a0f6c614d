"""Adapters to the payment gateways behind one small interface (base.PaymentGateway).

Services ask `get_gateway(name)` for an adapter and never touch an SDK themselves.
"""

from __future__ import annotations

from .base import (
    GatewayDeclined,
    GatewayError,
    GatewayNotConfigured,
    GatewayPayment,
    GatewayRefund,
    GatewayUnavailable,
    PaymentGateway,
)


def get_gateway(name: str) -> PaymentGateway:
    if name == "stripe":
        from .stripe import StripeGateway

        return StripeGateway.from_settings()
    if name == "braintree":
        from .braintree import BraintreeGateway

        return BraintreeGateway.from_settings()
    raise GatewayNotConfigured(f"Unknown gateway '{name}'.")


__all__ = [
    "GatewayDeclined",
    "GatewayError",
    "GatewayNotConfigured",
    "GatewayPayment",
    "GatewayRefund",
    "GatewayUnavailable",
    "PaymentGateway",
    "get_gateway",
]
