"""Exactly one payment per intent across a lost gateway answer (issue 9, point 4).

A create whose gateway answer is lost gives the client a 503; the client retries with the same
Idempotency-Key. The retry must find the first attempt's row (Payment.client_key), keep its
gateway idempotency key, and settle it from what the gateway did, without a second charge.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from payments.models import IdempotencyRecord, Payment
from tests.api.conftest import _fresh_throttles, client_for, integration_user, issue
from tests.payments.factories import MerchantFactory

__all__ = ["_fresh_throttles", "integration_user"]  # the API tests' fixtures, used here too

BODY = {"gateway": "stripe", "amount": 2_500, "currency": "eur", "payment_method": "pm_card_visa"}
BT_BODY = {
    "gateway": "braintree",
    "amount": 2_500,
    "currency": "eur",
    "payment_method": "fake-valid-nonce",
}


class DroppingStripeProxy:
    """Forwards to localstripe; drops the answers of the first `drop_creates` PaymentIntent
    creates (the intent is made upstream, the client sees the connection closed).

    localstripe ignores Idempotency-Key; real Stripe replays the stored answer to a repeated key
    for 24 hours. The proxy models that documented behaviour: a create carrying a key it has
    seen is answered with the stored answer and not forwarded. The SDK's own network retries
    (same key) therefore do not create a second intent, as at Stripe. Our retry path must not
    depend on it: the tests check that the client's retry sends no create at all."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.drop_creates = 0
        self.creates_received = 0  # create requests that reached the proxy
        self.creates_forwarded = 0  # creates that reached localstripe
        self.stored: dict[str, tuple[int, bytes]] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                is_create = self.command == "POST" and self.path == "/v1/payment_intents"
                key = self.headers.get("Idempotency-Key", "")
                if is_create:
                    proxy.creates_received += 1
                if is_create and key in proxy.stored:
                    status, answer = proxy.stored[key]
                else:
                    status, answer = proxy.forward(self.command, self.path, body, self.headers)
                    if is_create:
                        proxy.creates_forwarded += 1
                        if key:
                            proxy.stored[key] = (status, answer)
                if is_create and proxy.drop_creates > 0:
                    proxy.drop_creates -= 1
                    self.close_connection = True
                    return  # the answer is lost on the way back
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def forward(self, method: str, path: str, body: bytes, headers: Any) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port, timeout=10
        )
        wanted = ("Authorization", "Content-Type", "Stripe-Version")
        connection.request(
            method, path, body=body or None, headers={h: headers[h] for h in wanted if headers[h]}
        )
        response = connection.getresponse()
        answer = response.read()
        connection.close()
        return response.status, answer

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stripe_proxy(local_stripe: str, settings: Any) -> Iterator[DroppingStripeProxy]:
    proxy = DroppingStripeProxy(local_stripe)
    settings.STRIPE_API_BASE = proxy.url
    yield proxy
    proxy.stop()


def intents_at_stripe(base: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{base}/v1/payment_intents?limit=100", headers={"Authorization": "Bearer sk_test_local"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["data"]


@pytest.fixture
def merchant(db: None) -> Any:
    return MerchantFactory()


@pytest.fixture
def raw(integration_user: Any, merchant: Any) -> str:
    return issue(integration_user, ["payments:read", "payments:write"], merchant=merchant)


def _create(raw: str, key: str = "order-1", body: dict | None = None) -> Any:
    return client_for(raw, HTTP_IDEMPOTENCY_KEY=key).post(
        "/api/v1/payments/", body or BODY, format="json"
    )


@pytest.mark.django_db
def test_a_lost_create_answer_then_the_retry_charges_once(
    stripe_proxy: DroppingStripeProxy, local_stripe: str, raw: str
) -> None:
    stripe_proxy.drop_creates = 3  # the first try and the SDK's two network retries
    lost = _create(raw)
    assert lost.status_code == 503, lost.content
    assert lost.json()["type"] == "gateway_unavailable"
    assert len(intents_at_stripe(local_stripe)) == 1  # it did reach Stripe
    row = Payment.objects.get()
    assert (row.status, row.gateway_reference) == ("pending", "")
    assert not IdempotencyRecord.objects.exists()  # the 503 freed the key for the retry

    received_before_retry = stripe_proxy.creates_received
    retry = _create(raw)
    assert retry.status_code == 201, retry.content
    intents = intents_at_stripe(local_stripe)
    assert len(intents) == 1
    assert intents[0]["metadata"] == {"payment_id": str(row.pk)}
    payment = Payment.objects.get()
    assert retry.json()["id"] == payment.pk == row.pk
    assert (payment.status, payment.gateway_reference) == ("captured", intents[0]["id"])
    assert payment.captured_amount == 2_500 and payment.card_last4 == "4242"
    # Found by its metadata, not by Stripe replaying the key: the retry sent no create at all.
    assert stripe_proxy.creates_received == received_before_retry
    assert stripe_proxy.creates_forwarded == 1
    assert _create(raw).json() == retry.json()  # and the answer is replayed from now on


@pytest.mark.django_db
def test_a_retry_with_the_key_but_another_amount_is_422_and_charges_nothing(
    stripe_proxy: DroppingStripeProxy, local_stripe: str, raw: str
) -> None:
    stripe_proxy.drop_creates = 3
    assert _create(raw).status_code == 503
    other = _create(raw, body={**BODY, "amount": 9_999})
    assert other.status_code == 422 and other.json()["type"] == "idempotency_key_reused"
    assert Payment.objects.count() == 1 and Payment.objects.get().amount == 2_500
    assert len(intents_at_stripe(local_stripe)) == 1
    assert stripe_proxy.creates_forwarded == 1


@pytest.mark.django_db
def test_a_retry_of_a_create_that_never_reached_stripe_creates_it_once(
    local_stripe: str, raw: str, settings: Any
) -> None:
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: never reached Stripe
    assert _create(raw).status_code == 503
    settings.STRIPE_API_BASE = local_stripe
    retry = _create(raw)
    assert retry.status_code == 201
    assert len(intents_at_stripe(local_stripe)) == 1
    payment = Payment.objects.get()
    assert (payment.status, retry.json()["id"]) == ("captured", payment.pk)


@pytest.mark.django_db
def test_a_lost_braintree_sale_answer_then_the_retry_finds_the_sale_by_order_id(
    local_braintree: Any, raw: str
) -> None:
    local_braintree.drop_sale_answers = 1
    lost = _create(raw, body=BT_BODY)
    assert lost.status_code == 503, lost.content
    assert len(local_braintree.transactions) == 1  # the sale was made
    row = Payment.objects.get()
    assert (row.status, row.gateway_reference) == ("pending", "")

    retry = _create(raw, body=BT_BODY)
    assert retry.status_code == 201, retry.content
    (sale,) = local_braintree.transactions.values()
    assert sale.order_id == f"payment-{row.pk}"
    payment = Payment.objects.get()
    assert (payment.status, payment.gateway_reference) == ("captured", sale.id)
    assert retry.json()["id"] == row.pk
    sales = [
        r
        for r in local_braintree.requests
        if r[:2] == ("POST", "/merchants/merchant_test/transactions")
    ]
    assert len(sales) == 1


@pytest.mark.django_db
def test_keys_are_scoped_to_the_merchant_of_the_token(
    local_stripe: str, integration_user: Any, merchant: Any
) -> None:
    other = MerchantFactory()
    first = issue(integration_user, ["payments:write"], merchant=merchant)
    second = issue(integration_user, ["payments:write"], merchant=other)
    a, b = _create(first, key="same"), _create(second, key="same")
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]
    assert (a.json()["merchant"], b.json()["merchant"]) == (merchant.pk, other.pk)
    assert "Idempotent-Replayed" not in b
    assert sorted(IdempotencyRecord.objects.values_list("scope", flat=True)) == sorted(
        [f"merchant:{merchant.pk}", f"merchant:{other.pk}"]
    )
    assert len(intents_at_stripe(local_stripe)) == 2
    # A third token of the same merchant and owner is the same caller: the answer is replayed.
    third = issue(integration_user, ["payments:write"], merchant=merchant)
    again = _create(third, key="same")
    assert again.json()["id"] == a.json()["id"] and again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_keys_are_scoped_to_the_endpoint(local_stripe: str, raw: str, merchant: Any) -> None:
    created = _create(raw, key="k-1")
    refund = client_for(raw, HTTP_IDEMPOTENCY_KEY="k-1").post(
        f"/api/v1/payments/{created.json()['id']}/refunds/",
        {"amount": 500, "reason": "duplicate"},
        format="json",
    )
    assert refund.status_code == 201, refund.content  # not "key reused with another body"
    assert IdempotencyRecord.objects.count() == 2


@pytest.mark.django_db
def test_a_staff_token_and_a_merchant_token_of_one_owner_do_not_share_keys(
    local_stripe: str, merchant: Any, administrator: Any
) -> None:
    # Creating payments needs payments.add_payment: an Administrator's tokens have it.
    staff = issue(administrator, ["payments:write"])
    bound = issue(administrator, ["payments:write"], merchant=merchant)
    a = _create(staff, key="same", body={**BODY, "merchant": merchant.pk})
    b = _create(bound, key="same")
    assert (a.status_code, b.status_code) == (201, 201), (a.content, b.content)
    assert a.json()["id"] != b.json()["id"]
    assert Payment.objects.filter(merchant=merchant).count() == 2
