"""The sandbox gateway: our own test gateway behind the same interface as Stripe and Braintree,
in the spirit of Stripe's test mode and Hyperswitch's dummy connector. DEBUG only.

Its state lives in its own table (payments.models.SandboxObject), so it survives restarts and
is shared with Celery workers. The payment method picks the outcome (Stripe's own test tokens
and card numbers, see TEST_CARDS and the README); only the brand and last four are kept.

Like a real gateway it tells us what happened a moment later through signed webhooks (HMAC-
SHA256 over "timestamp.body", Stripe's scheme, with SANDBOX_WEBHOOK_SECRET). Each event is a
row here first (its state change and, once sent, its exact body) and is delivered after commit
by the task payments.tasks.sandbox_deliver_webhook, enqueued by name (payments.tasks imports
this module, so this module cannot import it), to /webhooks/sandbox/ through the same
verification, inbox and processing as Stripe's. Some state changes happen only when their event
is sent (a refund succeeds or fails, a dispute is decided), as they would at the gateway.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import SandboxObject
from . import base

log = logging.getLogger(__name__)

NAME = "sandbox"
SIGNATURE_HEADER = "Sandbox-Signature"
DELIVER_TASK = "payments.tasks.sandbox_deliver_webhook"
EVIDENCE_DAYS = 7


@dataclass(frozen=True)
class SandboxCard:
    brand: str
    last4: str
    outcome: str  # one of OUTCOMES
    decline_code: str = ""
    decline_message: str = ""

    def payment_fields(self) -> dict[str, str]:
        """What a payment keeps of its card: the brand and last four (never the number), and
        the outcome the card picks."""
        return {
            "brand": self.brand,
            "last4": self.last4,
            "outcome": self.outcome,
            "decline_code": self.decline_code,
        }


SUCCESS, DECLINED, INSUFFICIENT_FUNDS, DISPUTED, REFUND_FAILS = (
    "success",
    "declined",
    "insufficient_funds",
    "disputed",
    "refund_fails",
)

_SUCCESS = SandboxCard("visa", "4242", SUCCESS)
_DECLINED = SandboxCard("visa", "0002", DECLINED, "card_declined", "Your card was declined.")
_NO_FUNDS = SandboxCard(
    "visa", "9995", INSUFFICIENT_FUNDS, "insufficient_funds", "Your card has insufficient funds."
)
_DISPUTED = SandboxCard("visa", "0259", DISPUTED)
_REFUND_FAILS = SandboxCard("visa", "5126", REFUND_FAILS)

# Stripe's test payment methods and the card numbers behind them (docs.stripe.com/testing).
# The API refuses card numbers for every gateway; the numbers work where a payment method is
# passed to the services directly (the console, scripts, tests).
TEST_CARDS: dict[str, SandboxCard] = {
    "pm_card_visa": _SUCCESS,
    "4242424242424242": _SUCCESS,
    "pm_card_mastercard": SandboxCard("mastercard", "4444", SUCCESS),
    "5555555555554444": SandboxCard("mastercard", "4444", SUCCESS),
    "pm_card_chargeDeclined": _DECLINED,
    "4000000000000002": _DECLINED,
    "pm_card_chargeDeclinedInsufficientFunds": _NO_FUNDS,
    "4000000000009995": _NO_FUNDS,
    "pm_card_createDispute": _DISPUTED,
    "4000000000000259": _DISPUTED,
    "pm_card_refundFail": _REFUND_FAILS,
    "4000000000005126": _REFUND_FAILS,
}


def card_for(payment_method: str) -> SandboxCard:
    value = payment_method.strip()
    digits = value.replace(" ", "").replace("-", "")
    card = TEST_CARDS.get(digits if digits.isdigit() else value)
    if card is None:
        # Never echo the value: it may be a real card number typed by mistake. A decline, so
        # the payment recorded for the attempt ends failed rather than pending.
        raise base.GatewayDeclined(
            "No such payment method: use one of the sandbox's test cards (README, "
            "'Sandbox gateway'), e.g. pm_card_visa.",
            gateway=NAME,
            code="invalid_payment_method",
        )
    return card


def signature_v1(secret: str, timestamp: int, body: str) -> str:
    """Stripe's v1 scheme: hex HMAC-SHA256 of "<timestamp>.<body>"."""
    signed = f"{timestamp}.{body}".encode()
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: str, timestamp: int | None = None) -> str:
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={signature_v1(secret, moment, body)}"


def _new_reference(prefix: str) -> str:
    return f"sbx_{prefix}_{secrets.token_hex(12)}"


def _unix(moment: datetime.datetime) -> int:
    return int(moment.timestamp())


def _not_found(what: str, reference: str) -> base.GatewayError:
    return base.GatewayError(f"No such {what}: {reference}", gateway=NAME, code="resource_missing")


def emit_event(
    event_type: str, target: SandboxObject, *, delay: int, change: dict[str, Any]
) -> SandboxObject:
    """Record an event about `target`; `change` is applied to the target when the event is
    sent. Delivery is enqueued after commit (at once when no transaction is open). The sandbox
    gateway and the sandbox bank rail (payments/rails/sandbox.py) send through this."""
    event = new_object(
        SandboxObject.Kind.EVENT,
        "evt",
        parent=target.reference,
        type=event_type,
        target=target.reference,
        change=change,
    )
    reference = event.reference

    def enqueue() -> None:
        from celery import current_app

        if DELIVER_TASK not in current_app.tasks:
            # Task modules are imported when a worker starts; a web process imports them
            # here, as the worker would (Celery's autodiscovery of each app's tasks.py).
            current_app.loader.import_default_modules()
        current_app.signature(DELIVER_TASK, args=[reference], countdown=delay).apply_async()

    transaction.on_commit(enqueue, robust=True)
    return event


def new_object(
    kind: str, prefix: str, *, parent: str = "", idempotency_key: str = "", **data: Any
) -> SandboxObject:
    """A new object at the sandbox under a new reference: an event, or a payment, refund,
    dispute or bank-rail credit (whose `data` starts with `amount_fields`)."""
    return SandboxObject.objects.create(
        kind=kind,
        reference=_new_reference(prefix),
        parent=parent,
        idempotency_key=idempotency_key,
        data=data,
    )


def amount_fields(status: str, amount: int, currency: str) -> dict[str, Any]:
    """What every payment, refund, dispute and credit at the sandbox has."""
    return {"status": status, "amount": amount, "currency": currency.upper()}


def refuse_unless_enabled(what: str, not_configured: Callable[[str], Exception]) -> None:
    """Raise `not_configured(why)` unless the sandbox `what` (gateway, rail) may be used.
    SANDBOX_ENABLED cannot be on without DEBUG: the settings refuse to start."""
    if not settings.SANDBOX_ENABLED:
        raise not_configured(
            f"The sandbox {what} is disabled: SANDBOX_ENABLED is off (it is never on in "
            "production settings)."
        )


def webhook_delay() -> int:
    """Seconds between a change and its event (SANDBOX_WEBHOOK_DELAY_SECONDS)."""
    return max(int(settings.SANDBOX_WEBHOOK_DELAY_SECONDS), 0)


def first_with_key(kind: str, idempotency_key: str) -> SandboxObject | None:
    """The row a first call with this idempotency key made, locked; the same key gets the
    first answer again, as at Stripe."""
    return (
        SandboxObject.objects.select_for_update()
        .filter(kind=kind, idempotency_key=idempotency_key)
        .first()
    )


class SandboxGateway(base.PaymentGateway):
    name = NAME

    @classmethod
    def from_settings(cls) -> SandboxGateway:
        refuse_unless_enabled("gateway", partial(base.GatewayNotConfigured, gateway=NAME))
        return cls()

    # -- the sandbox's own records ---------------------------------------------------------

    def _get(self, kind: str, reference: str, *, lock: bool = False) -> SandboxObject:
        rows = SandboxObject.objects.select_for_update() if lock else SandboxObject.objects
        found = rows.filter(kind=kind, reference=reference).first()
        if found is None:
            raise _not_found(kind, reference)
        return found

    @staticmethod
    def _answer_fields(row: SandboxObject) -> dict[str, Any]:
        """What the sandbox's answer about a payment or refund starts with."""
        return {
            "reference": row.reference,
            "status": row.data["status"],
            "amount": row.data["amount"],
        }

    def _payment(self, row: SandboxObject) -> base.GatewayPayment:
        data = row.data
        return base.GatewayPayment(
            **self._answer_fields(row),
            currency=data["currency"],
            captured_amount=data["captured"],
            card_brand=data["brand"],
            card_last4=data["last4"],
        )

    def _emit(
        self, event_type: str, target: SandboxObject, *, delay: int, change: dict[str, Any]
    ) -> SandboxObject:
        return emit_event(event_type, target, delay=delay, change=change)

    # -- the gateway interface -------------------------------------------------------------

    def _authorize(self, request: base.ChargeRequest) -> base.GatewayPayment:
        card = card_for(request.payment_method)  # an unknown method is refused before any write
        with transaction.atomic():
            row = first_with_key(SandboxObject.Kind.PAYMENT, request.idempotency_key)
            if row is None:
                declined = card.outcome in (DECLINED, INSUFFICIENT_FUNDS)
                status = "failed" if declined else "captured" if request.capture else "authorized"
                row = _payment_row(
                    status=status,
                    amount=request.amount,
                    currency=request.currency,
                    card=card,
                    payment_id=request.payment_id,
                    idempotency_key=request.idempotency_key,
                )
                self._emit(f"payment.{status}", row, delay=webhook_delay(), change={})
                if status == "captured":
                    self._open_dispute_later(row)
        if row.data["status"] == "failed":
            raise base.GatewayDeclined(card.decline_message, gateway=NAME, code=card.decline_code)
        return self._payment(row)

    def _open_dispute_later(self, payment: SandboxObject) -> None:
        """The disputed test card: the cardholder disputes the whole amount a moment after
        the money was taken (the dispute exists at the gateway once its event is sent)."""
        if payment.data["outcome"] != DISPUTED:
            return
        dispute = _dispute_row(
            payment_reference=payment.reference,
            amount=payment.data["captured"],
            currency=payment.data["currency"],
            status="opening",
            due=timezone.now() + datetime.timedelta(days=EVIDENCE_DAYS),
        )
        self._emit(
            "dispute.created",
            dispute,
            delay=2 * webhook_delay() + 1,
            change={"status": "needs_response"},
        )

    def capture(
        self, *, reference: str, amount: int | None, idempotency_key: str
    ) -> base.GatewayPayment:
        with transaction.atomic():
            row = self._get(SandboxObject.Kind.PAYMENT, reference, lock=True)
            data = row.data
            if data["status"] == "authorized":
                captured = data["amount"] if amount is None else amount
                if not 0 < captured <= data["amount"]:
                    raise base.GatewayError(
                        f"Cannot capture {captured}: the payment is for {data['amount']}.",
                        gateway=NAME,
                        code="amount_too_large",
                    )
                data.update(status="captured", captured=captured)
                row.save()
                self._emit("payment.captured", row, delay=webhook_delay(), change={})
                self._open_dispute_later(row)
            elif data["status"] != "captured":  # a second capture gets the first's answer
                raise base.GatewayError(
                    f"This payment is {data['status']}: only an authorized one can be captured.",
                    gateway=NAME,
                    code="payment_unexpected_state",
                )
            return self._payment(row)

    def cancel(self, *, reference: str, idempotency_key: str) -> base.GatewayPayment:
        with transaction.atomic():
            row = self._get(SandboxObject.Kind.PAYMENT, reference, lock=True)
            if row.data["status"] in ("authorized", "failed"):
                row.data["status"] = "canceled"
                row.save()
                self._emit("payment.canceled", row, delay=webhook_delay(), change={})
            elif row.data["status"] != "canceled":
                raise base.GatewayError(
                    f"This payment is {row.data['status']}: it can no longer be canceled.",
                    gateway=NAME,
                    code="payment_unexpected_state",
                )
            return self._payment(row)

    def _refund(self, request: base.RefundRequest) -> base.GatewayRefund:
        """Pending at once; succeeded (or failed, for the refund-fails card) when its webhook
        is sent a moment later."""
        with transaction.atomic():
            payment = self._get(SandboxObject.Kind.PAYMENT, request.reference, lock=True)
            row = SandboxObject.objects.filter(
                kind=SandboxObject.Kind.REFUND, idempotency_key=request.idempotency_key
            ).first()
            if row is None:
                if payment.data["status"] != "captured":
                    raise base.GatewayError(
                        f"This payment is {payment.data['status']}: nothing to refund.",
                        gateway=NAME,
                        code="charge_not_refundable",
                    )
                left = payment.data["captured"] - self._refunded(payment.reference)
                if not 0 < request.amount <= left:
                    raise base.GatewayError(
                        f"Refund amount ({request.amount}) is greater than what is left to "
                        f"refund ({left}).",
                        gateway=NAME,
                        code="amount_too_large",
                    )
                row = new_object(
                    SandboxObject.Kind.REFUND,
                    "re",
                    **amount_fields("pending", request.amount, payment.data["currency"]),
                    refund_id=request.refund_id,
                    failure_reason="",
                    parent=payment.reference,
                    idempotency_key=request.idempotency_key,
                )
                fails = payment.data["outcome"] == REFUND_FAILS
                self._emit(
                    "refund.failed" if fails else "refund.succeeded",
                    row,
                    delay=webhook_delay(),
                    change={"status": "failed", "failure_reason": "expired_or_canceled_card"}
                    if fails
                    else {"status": "succeeded"},
                )
            return self._gateway_refund(row)

    def _gateway_refund(self, row: SandboxObject) -> base.GatewayRefund:
        return base.GatewayRefund(**self._answer_fields(row), refund_id=row.data["refund_id"])

    def _refunds(self, reference: str) -> list[SandboxObject]:
        return list(
            SandboxObject.objects.filter(kind=SandboxObject.Kind.REFUND, parent=reference).order_by(
                "created_at", "pk"
            )
        )

    def _refunded(self, reference: str) -> int:
        return sum(
            int(r.data["amount"])
            for r in self._refunds(reference)
            if r.data["status"] in ("pending", "succeeded")
        )

    def refunds_for_payment(self, *, reference: str) -> list[base.GatewayRefund]:
        self._get(SandboxObject.Kind.PAYMENT, reference)
        return [self._gateway_refund(r) for r in self._refunds(reference)]

    def payment_reference_for_charge(self, *, charge_reference: str) -> str:
        # The sandbox has no separate charges: a payment is its own charge.
        return self._get(SandboxObject.Kind.PAYMENT, charge_reference).reference

    def fetch(self, *, reference: str) -> base.GatewayPayment:
        return self._payment(self._get(SandboxObject.Kind.PAYMENT, reference))

    def find_payment(
        self, *, payment_id: int, order_id: str, created_after: datetime.datetime
    ) -> base.GatewayPayment | None:
        row = SandboxObject.objects.filter(
            kind=SandboxObject.Kind.PAYMENT, idempotency_key=order_id, created_at__gte=created_after
        ).first()
        return self._payment(row) if row is not None else None

    def list_refunds(self, *, reference: str, currency: str) -> list[base.GatewayRefundSeen]:
        # As a gateway lists it: our refund's id comes back as `our_id`, not as `refund_id`.
        return [
            base.GatewayRefundSeen(**self._answer_fields(r), our_id=r.data["refund_id"])
            for r in self._refunds(reference)
        ]

    def fetch_dispute(self, *, dispute_reference: str) -> base.GatewayDispute:
        row = self._get(SandboxObject.Kind.DISPUTE, dispute_reference)
        if row.data["status"] == "opening":
            raise _not_found("dispute", dispute_reference)
        return base.GatewayDispute(reference=row.reference, status=row.data["status"])

    def _open_dispute(self, dispute_reference: str, action: str) -> SandboxObject:
        row = self._get(SandboxObject.Kind.DISPUTE, dispute_reference, lock=True)
        if row.data["status"] != "needs_response":
            raise base.GatewayError(
                f"This dispute is {row.data['status']}: it can no longer be {action}.",
                gateway=NAME,
                code="dispute_unexpected_state",
            )
        return row

    def submit_dispute_evidence(
        self, *, dispute_reference: str, text: str, idempotency_key: str
    ) -> None:
        """Under review at once. Stripe's test-mode words decide it a moment later:
        "winning_evidence" in the text wins, "losing_evidence" loses; otherwise it stays
        under review."""
        with transaction.atomic():
            row = (
                SandboxObject.objects.select_for_update()
                .filter(kind=SandboxObject.Kind.DISPUTE, reference=dispute_reference)
                .first()
            )
            if row is not None and row.data.get("evidence_key") == idempotency_key:
                return  # the same submission again: done already
            row = self._open_dispute(dispute_reference, "answered")
            row.data.update(status="under_review", evidence_key=idempotency_key)
            row.save()
            self._emit("dispute.updated", row, delay=webhook_delay(), change={})
            verdict = (
                "won" if "winning_evidence" in text else "lost" if "losing_evidence" in text else ""
            )
            if verdict:
                self._emit(
                    "dispute.closed",
                    row,
                    delay=2 * webhook_delay() + 1,
                    change={"status": verdict},
                )

    def accept_dispute(self, *, dispute_reference: str, idempotency_key: str) -> None:
        with transaction.atomic():
            row = self._get(SandboxObject.Kind.DISPUTE, dispute_reference, lock=True)
            if row.data["status"] == "accepted":
                return
            row = self._open_dispute(dispute_reference, "accepted")
            row.data["status"] = "accepted"
            row.save()
            self._emit("dispute.closed", row, delay=webhook_delay(), change={})


# -- history already at the gateway (the demo's 90 days) ------------------------------------


def _payment_row(
    *,
    status: str,
    amount: int,
    currency: str,
    card: SandboxCard,
    payment_id: int | None = None,
    idempotency_key: str = "",
) -> SandboxObject:
    return new_object(
        SandboxObject.Kind.PAYMENT,
        "pay",
        **amount_fields(status, amount, currency),
        captured=amount if status == "captured" else 0,
        **card.payment_fields(),
        payment_id=payment_id,
        idempotency_key=idempotency_key,
    )


def _dispute_row(
    *, payment_reference: str, amount: int, currency: str, status: str, due: datetime.datetime
) -> SandboxObject:
    return new_object(
        SandboxObject.Kind.DISPUTE,
        "dp",
        **amount_fields(status, amount, currency),
        reason="fraudulent",
        evidence_due_by=_unix(due),
        parent=payment_reference,
    )


def on_file_payment(*, amount: int, currency: str, status: str, brand: str, last4: str) -> str:
    """A payment the sandbox holds already, as if taken earlier (no event is sent): the demo's
    history, so that refunds and disputes of old payments go through the sandbox like new ones.
    Its reference."""
    declined = status == "failed"
    card = SandboxCard(brand, last4, SUCCESS, "card_declined" if declined else "")
    return _payment_row(status=status, amount=amount, currency=currency, card=card).reference


def on_file_refund(*, payment_reference: str, amount: int, currency: str, refund_id: int) -> str:
    """A refund the sandbox paid out earlier (succeeded). Its reference."""
    return new_object(
        SandboxObject.Kind.REFUND,
        "re",
        **amount_fields("succeeded", amount, currency),
        refund_id=refund_id,
        failure_reason="",
        parent=payment_reference,
    ).reference


def on_file_dispute(
    *, payment_reference: str, amount: int, currency: str, status: str, due: datetime.datetime
) -> str:
    """A dispute the cardholder opened earlier, in `status` at the sandbox. Its reference."""
    return _dispute_row(
        payment_reference=payment_reference,
        amount=amount,
        currency=currency,
        status=status,
        due=due,
    ).reference


# -- webhooks: what the sandbox sends ------------------------------------------------------


def _snapshot(row: SandboxObject) -> dict[str, Any]:
    """The object as its webhook shows it: what every kind has, then the fields of its own."""
    data = row.data
    common = {
        "id": row.reference,
        "object": row.kind,
        "status": data["status"],
        "amount": data["amount"],
        "currency": data["currency"],
    }
    if row.kind == SandboxObject.Kind.CREDIT:
        # A bank-rail credit: never the account number, only its last four.
        return {
            **common,
            "account_last4": data["last4"],
            "return_reason": data.get("return_reason", ""),
        }
    if row.kind == SandboxObject.Kind.PAYMENT:
        return {
            **common,
            "amount_captured": data["captured"],
            "card": {"brand": data["brand"], "last4": data["last4"]},
            "decline_code": data["decline_code"] if data["status"] == "failed" else "",
            "metadata": {"payment_id": str(data["payment_id"] or "")},
        }
    if row.kind == SandboxObject.Kind.REFUND:
        return {
            **common,
            "payment": row.parent,
            "failure_reason": data["failure_reason"],
            "metadata": {"refund_id": str(data["refund_id"] or "")},
        }
    return {
        **common,
        "payment": row.parent,
        "reason": data["reason"],
        "evidence_due_by": data["evidence_due_by"],
    }


def sandbox_event_body(reference: str) -> str | None:
    """The event's body, made on its first delivery: its change is applied to the object it is
    about, and the object as it is then goes in. A redelivery sends the same body (so the
    same event id: the inbox stores it once). None for an unknown event."""
    with transaction.atomic():
        event = (
            SandboxObject.objects.select_for_update()
            .filter(kind=SandboxObject.Kind.EVENT, reference=reference)
            .first()
        )
        if event is None:
            return None
        body = event.data.get("body")
        if isinstance(body, str):
            return body
        target = SandboxObject.objects.select_for_update().get(reference=event.data["target"])
        if event.data["change"]:
            target.data.update(event.data["change"])
            target.save()
        now = timezone.now()
        body = json.dumps(
            {
                "id": event.reference,
                "object": "event",
                "type": event.data["type"],
                "created": _unix(now),
                "data": {"object": _snapshot(target)},
            },
            separators=(",", ":"),
        )
        event.data["body"] = body
        event.save()
        return body


def sandbox_event_delivered(reference: str, outcome: str) -> None:
    """Note how a delivery went on the event (the sandbox's own record, for a person)."""
    with transaction.atomic():
        event = SandboxObject.objects.select_for_update().get(reference=reference)
        event.data["deliveries"] = [*event.data.get("deliveries", []), outcome][-10:]
        event.save()


def sandbox_post(url: str, body: str, header: str) -> int:
    """POST a signed event; the HTTP status. Raises OSError when nobody answers there."""
    if not url.startswith(("http://", "https://")):
        raise base.GatewayError(f"SANDBOX_WEBHOOK_URL must be http(s), not {url!r}", gateway=NAME)
    request = urllib.request.Request(  # noqa: S310  # scheme checked above
        url,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # nosec B310
            return int(response.status)
    except urllib.error.HTTPError as exc:  # an answer, only not a 2xx
        return int(exc.code)
