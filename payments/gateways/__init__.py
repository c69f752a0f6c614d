"""Adapters to the payment gateways behind one small interface (base.PaymentGateway).

Services ask `get_gateway(name)` for an adapter and never touch an SDK themselves.
"""

from __future__ import annotations

from .base import (
    GatewayDeclined,
    GatewayDispute,
    GatewayError,
    GatewayNotConfigured,
    GatewayPayment,
    GatewayRefund,
    GatewayRefundSeen,
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
    if name == "sandbox":
        from .sandbox import SandboxGateway

        return SandboxGateway.from_settings()
    raise GatewayNotConfigured(f"Unknown gateway '{name}'.")


__all__ = [
    "GatewayDeclined",
    "GatewayDispute",
    "GatewayError",
    "GatewayNotConfigured",
    "GatewayPayment",
    "GatewayRefund",
    "GatewayRefundSeen",
    "GatewayUnavailable",
    "PaymentGateway",
    "get_gateway",
]
