"""Braintree notifications made and signed by the SDK's own `webhook_testing`, with the test
keys the suite configures (`use_test_keys`)."""

from __future__ import annotations

from typing import Any

import braintree

from payments.gateways.braintree import BraintreeGateway
from payments.models import Chargeback

Kind = braintree.WebhookNotification.Kind

MERCHANT_ID = "merchant_test"
PUBLIC_KEY = "public_test"
PRIVATE_KEY = "private_test"


def use_test_keys(settings: Any, environment: str = "sandbox") -> None:
    """Point the gateway at `environment` (the SDK's sandbox, or our local server's URL) with
    the keys `sample_form` signs with."""
    settings.BRAINTREE_ENVIRONMENT = environment
    settings.BRAINTREE_MERCHANT_ID = MERCHANT_ID
    settings.BRAINTREE_PUBLIC_KEY = PUBLIC_KEY
    settings.BRAINTREE_PRIVATE_KEY = PRIVATE_KEY


def sample_form(kind: str, subject_id: str) -> dict[str, str]:
    """The form Braintree posts for a `kind` notification about `subject_id`, as text."""
    sample = BraintreeGateway.from_settings().gateway.webhook_testing.sample_notification(
        kind, subject_id
    )
    payload = sample["bt_payload"]
    return {
        "bt_signature": sample["bt_signature"],
        "bt_payload": payload.decode() if isinstance(payload, bytes) else payload,
    }


# Each dispute notification kind and the status it leaves the chargeback in.
DISPUTE_OUTCOMES = [
    (Kind.DisputeOpened, Chargeback.Status.NEEDS_RESPONSE),
    (Kind.DisputeUnderReview, Chargeback.Status.UNDER_REVIEW),
    (Kind.DisputeDisputed, Chargeback.Status.UNDER_REVIEW),
    (Kind.DisputeWon, Chargeback.Status.WON),
    (Kind.DisputeLost, Chargeback.Status.LOST),
    (Kind.DisputeAccepted, Chargeback.Status.ACCEPTED),
    (Kind.DisputeAutoAccepted, Chargeback.Status.ACCEPTED),
    (Kind.DisputeExpired, Chargeback.Status.EXPIRED),
]
