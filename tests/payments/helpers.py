"""Plain helpers for the payments tests (fixtures live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, connections

from audits.models import PaymentAudit
from payments.models import Merchant, Payment
from payments.services.payments import payment_authorize
from tests.payments.factories import MerchantFactory

# What each gateway's test server accepts as a card that pays.
TEST_PAYMENT_METHOD = {"stripe": "pm_card_visa", "braintree": "fake-valid-nonce"}


def gateway_payment(
    *,
    amount: int,
    gateway: str = "stripe",
    merchant: Merchant | None = None,
    currency: str = "EUR",
    capture: bool = True,
    payment_method: str | None = None,
    **extra: Any,
) -> Payment:
    """A payment authorized (and, unless `capture=False`, captured) through the gateway's test
    server (the `local_stripe` or `local_braintree` fixture), for a new merchant unless given."""
    return payment_authorize(
        merchant=merchant or MerchantFactory(),
        gateway=gateway,
        amount=amount,
        currency=currency,
        payment_method=payment_method or TEST_PAYMENT_METHOD[gateway],
        capture=capture,
        **extra,
    )


def payment_audit_count(payment: Payment) -> int:
    """How many audit rows the payment has: compare to show an event wrote none."""
    return PaymentAudit.objects.filter(
        object_type="payments.payment", object_id=str(payment.pk)
    ).count()


@contextmanager
def payment_row_held(payment_id: int) -> Iterator[None]:
    """Hold the payment's row lock (FOR UPDATE) from another connection for the block: whatever
    then writes the payment waits inside its transaction, where a test can cut it."""
    blocker = connections.create_connection("default")
    blocker.set_autocommit(False)
    with blocker.cursor() as cursor:
        cursor.execute("SELECT id FROM payments_payment WHERE id = %s FOR UPDATE", [payment_id])
    try:
        yield
    finally:
        blocker.rollback()
        blocker.close()


def payment_lock_waiter_pid() -> int | None:
    """The backend waiting for a payment row's lock, if one is (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE %s AND datname = current_database()",
            ["%payments_payment%FOR UPDATE%"],
        )
        row = cursor.fetchone()
    return row[0] if row else None
