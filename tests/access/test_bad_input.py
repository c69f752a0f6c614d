"""Issue #10 point 6: bad input is a 4xx, never a 5xx, and changes nothing.

Every endpoint kind (API list, detail and create; screens with forms; both webhooks) x every
bad input (crafted cursors, NUL in the path, the query and a field, a lone surrogate, 10,000-deep
JSON, a 5 MB body). Webhook bodies are signed, so the bad part reaches past the signature.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client

from audits import context
from config.streaming import csv_response
from payments.gateways.sandbox import signature_header
from payments.models import ApiToken, WebhookEvent
from tests.api.conftest import issue
from tests.conftest import make_staff
from tests.helpers import row_counts
from tests.kyc.factories import KycCaseFactory
from tests.payments import stripe_helpers as sh
from tests.payments.braintree_samples import sample_form, use_test_keys
from tests.payments.factories import CapturedPaymentFactory, ChargebackFactory

pytestmark = pytest.mark.django_db

FIVE_MB = 5 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    path: str  # {payment}, {merchant}, {case}, {chargeback} filled from the world
    kind: str  # api, screen, stripe, braintree, sandbox
    fields: dict[str, Any] = field(default_factory=dict)


TARGETS = [
    Target("API payment list", "get", "/api/v1/payments/", "api"),
    Target("API audit trail", "get", "/api/v1/audit-trail/", "api"),
    Target("API chargeback list", "get", "/api/v1/chargebacks/", "api"),
    Target("API payment detail", "get", "/api/v1/payments/{payment}/", "api"),
    Target(
        "API merchant create",
        "post",
        "/api/v1/merchants/",
        "api",
        {"legal_name": "New Ltd", "country": "GB", "contact_email": "new@example.com"},
    ),
    Target(
        "API refund create",
        "post",
        "/api/v1/payments/{payment}/refunds/",
        "api",
        {"amount": 100, "reason": "requested_by_customer", "reason_detail": "asked"},
    ),
    Target(
        "API merchant update",
        "patch",
        "/api/v1/merchants/{merchant}/",
        "api",
        {"trading_name": "Renamed"},
    ),
    Target("payments screen search", "get", "/payments/", "screen", {"q": "shop"}),
    Target("audit search", "get", "/audits/", "screen", {"q": "shop"}),
    Target(
        "refund form",
        "post",
        "/payments/{payment}/",
        "screen",
        {
            "amount": "1.00",
            "reason": "requested_by_customer",
            "reason_detail": "asked",
            "confirm": "on",
        },
    ),
    Target("case note form", "post", "/kyc/cases/{case}/note", "screen", {"text": "seen"}),
    Target(
        "dispute evidence form",
        "post",
        "/disputes/{chargeback}/evidence",
        "screen",
        {"text": "tracking number"},
    ),
    Target("Stripe webhook", "post", "/webhooks/stripe/", "stripe"),
    Target("Braintree webhook", "post", "/webhooks/braintree/", "braintree"),
    Target("sandbox webhook", "post", "/webhooks/sandbox/", "sandbox"),
]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CURSORS = {
    "random base64 cursor": base64.b64encode(os.urandom(48)).decode(),
    "garbage cursor": "%%%not-a-cursor%%%",
    "cursor with a text position": _b64("p=abc"),
    "cursor past bigint": _b64("p=99999999999999999999999"),
    "cursor with a huge offset": _b64("o=99999999999999999999&p=1"),
}
BAD_INPUTS = [*CURSORS, "NUL in path", "NUL in query", "NUL in a field", "lone surrogate"]
BAD_INPUTS += ["10,000-deep JSON", "5 MB body"]
# Refused wherever they appear, whatever the view would have read.
_MUST_REFUSE = {"NUL in path", "NUL in query", "5 MB body"}


@pytest.fixture
def world(administrator: Any, settings: Any) -> dict[str, Any]:
    settings.STAFF_REQUIRE_OTP = False
    settings.STRIPE_WEBHOOK_SECRET = [sh.SECRET]
    use_test_keys(settings)
    settings.SANDBOX_ENABLED, settings.SANDBOX_WEBHOOK_SECRET = True, "sbx_whsec_test"
    settings.API_THROTTLE_RATES = {"token": "100000/min", "ip": "100000/min"}
    payment = CapturedPaymentFactory()
    chargeback = ChargebackFactory(payment__merchant=payment.merchant)
    case = KycCaseFactory()
    return {
        "payment": payment.pk,
        "merchant": payment.merchant_id,
        "case": case.pk,
        "chargeback": chargeback.pk,
        "token": issue(administrator, list(ApiToken.SCOPES)),
        "administrator": administrator,
    }


def _stripe_body(value: str) -> dict[str, Any]:
    return sh.event("payment_intent.succeeded", sh.intent(f"pi_{value}", "succeeded"))


def _braintree_form(payload_extra: str) -> dict[str, str]:
    form = sample_form("check", "")
    return {**form, "bt_payload": form["bt_payload"] + payload_extra}


def build(target: Target, bad: str, world: dict[str, Any]) -> dict[str, Any]:
    """The request a client would send, as keyword arguments to Client.generic."""
    path = target.path.format(**world)
    query = ""
    fields = dict(target.fields)
    raw: bytes | None = None
    content_type = "application/json" if target.kind in ("api", "stripe", "sandbox") else ""
    if target.kind == "screen":
        content_type = "application/x-www-form-urlencoded"
    if target.kind == "braintree":
        content_type = "application/x-www-form-urlencoded"

    if bad in CURSORS:
        query = "cursor=" + urllib.parse.quote(CURSORS[bad], safe="")
    elif bad == "NUL in path":
        path = path.rstrip("/") + "%00/"
    elif bad == "NUL in query":
        query = "q=a%00b&status=%00"
    elif bad == "10,000-deep JSON":
        raw = b"[" * 10_000 + b"]" * 10_000
        content_type = "application/json"
    elif bad == "5 MB body":
        raw = b"x" * FIVE_MB

    bad_value = {"NUL in a field": "a\x00b", "lone surrogate": "a\ud800b"}.get(bad)
    if raw is None:
        if target.kind == "stripe":
            raw = json.dumps(_stripe_body(bad_value or "ok")).encode()
        elif target.kind == "sandbox":
            payment = {"id": f"sbx_pay_{bad_value or 'ok'}", "object": "payment"}
            raw = json.dumps(sh.event("payment.captured", payment)).encode()
        elif target.kind == "braintree":
            form = _braintree_form(bad_value or "")
            raw = _urlencode(form)
        elif target.kind == "api":
            if bad_value is not None:
                fields = {key: bad_value for key in fields} or {"q": bad_value}
            raw = json.dumps(fields).encode() if target.method != "get" else b""
            if target.method == "get" and bad_value is not None:
                query = urllib.parse.urlencode({"status": bad_value}, errors="surrogatepass")
        else:
            if bad_value is not None:
                fields = {key: bad_value for key in fields}
            encoded = _urlencode(fields)
            if target.method == "get":
                query, raw = query or encoded.decode(), b""
            else:
                raw = encoded

    extra: dict[str, str] = {}
    if target.kind == "api":
        extra["HTTP_AUTHORIZATION"] = f"Bearer {world['token']}"
        extra["HTTP_IDEMPOTENCY_KEY"] = os.urandom(8).hex()
    if target.kind == "stripe":
        extra["HTTP_STRIPE_SIGNATURE"] = sh.sign(raw.decode("utf-8", "surrogatepass"))
    if target.kind == "sandbox":
        text = raw.decode("utf-8", "surrogatepass")
        extra["HTTP_SANDBOX_SIGNATURE"] = signature_header("sbx_whsec_test", text)
    return {
        "method": target.method.upper(),
        "path": path + ("?" + query if query else ""),
        "data": raw or b"",
        "content_type": content_type or "application/octet-stream",
        **extra,
    }


def _urlencode(fields: dict[str, str]) -> bytes:
    # A lone surrogate cannot be UTF-8: a browser sends its three bytes as they were typed.
    return urllib.parse.urlencode(fields, errors="surrogatepass").encode()


def _cases() -> list[Any]:
    cases = []
    for target in TARGETS:
        for bad in BAD_INPUTS:
            if bad in CURSORS and target.method != "get":
                continue
            cases.append(pytest.param(target, bad, id=f"{target.name} / {bad}"))
    return cases


@pytest.mark.parametrize(("target", "bad"), _cases())
def test_bad_input_is_a_4xx_and_writes_nothing(
    target: Target, bad: str, world: dict[str, Any]
) -> None:
    client = Client(raise_request_exception=False)
    if target.kind == "screen":
        client.force_login(world["administrator"])
    request: Callable[..., Any] = client.generic
    kwargs = build(target, bad, world)
    before = row_counts()
    response = request(**kwargs)
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if target.kind in ("stripe", "sandbox") and bad in ("NUL in a field", "lone surrogate"):
        # A signed event is the gateway's: stored with the character escaped and acknowledged
        # (tests/payments/test_webhook_inbox.py pins it), so that Stripe does not resend it.
        assert response.status_code == 200
        stored = WebhookEvent.objects.get()
        assert "\x00" not in json.dumps(stored.payload) and "\ud800" not in str(stored.payload)
        return
    if bad in _MUST_REFUSE or (target.kind != "screen" and target.method != "get"):
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    # Otherwise a GET may ignore what it does not read (a body, a cursor on a detail page),
    # and a screen answers with its form and the error beside the field.
    if bad == "5 MB body":
        assert response.status_code == 413
    assert row_counts() == before


def test_a_5_mb_body_is_refused_before_it_is_read(world: dict[str, Any]) -> None:
    """The 413 comes from the declared length: the stream is never read, so it cannot fail."""

    class Unreadable:
        def read(self, *args: Any) -> bytes:
            raise AssertionError("the body was read")

        def readline(self, *args: Any) -> bytes:
            raise AssertionError("the body was read")

    client = Client(raise_request_exception=False)
    before = row_counts()
    response = client.generic(
        "POST",
        "/api/v1/merchants/",
        b"",
        content_type="application/json",
        CONTENT_LENGTH=str(FIVE_MB),
        HTTP_AUTHORIZATION=f"Bearer {world['token']}",
        **{"wsgi.input": Unreadable()},
    )
    assert response.status_code == 413
    assert response.json()["type"] == "request_too_large"
    assert row_counts() == before


def test_a_document_upload_still_takes_a_file_of_several_megabytes(
    world: dict[str, Any], settings: Any
) -> None:
    """The upload views keep their own, larger limit (one document of up to 10 MB)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from kyc.models import KycDocument

    client = Client()
    pdf = b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024) + b"\n%%EOF\n"
    response = client.post(
        f"/api/v1/kyc-cases/{world['case']}/documents/",
        {
            "document_type": "company_registration",
            "file": SimpleUploadedFile("reg.pdf", pdf, content_type="application/pdf"),
        },
        HTTP_AUTHORIZATION=f"Bearer {world['token']}",
    )
    assert response.status_code == 201, response.content[:300]
    assert KycDocument.objects.filter(case_id=world["case"]).count() == 1


def test_valid_surrogate_pairs_and_ordinary_text_still_parse(world: dict[str, Any]) -> None:
    client = Client()
    response = client.post(
        "/api/v1/merchants/",
        json.dumps(
            {
                "legal_name": "Caf\u00e9 \U0001f600 Ltd",
                "country": "GB",
                "contact_email": "c@example.com",
            }
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world['token']}",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert response.status_code == 201, response.content
    assert response.json()["legal_name"] == "Caf\u00e9 \U0001f600 Ltd"


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


def _csv_cells(response: Any) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text, newline="")))


def test_the_csv_helper_neutralises_each_formula_prefix() -> None:
    response = csv_response(["h"], [[value, 42, "plain", ""] for value in FORMULAS], stem="t")
    rows = _csv_cells(response)
    assert [row[0] for row in rows[1:]] == ["'" + value for value in FORMULAS]
    assert rows[1][1:] == ["42", "plain", ""]


def test_the_payments_export_neutralises_formula_cells(administrator: Any, settings: Any) -> None:
    settings.STAFF_REQUIRE_OTP = False
    CapturedPaymentFactory(merchant__legal_name=FORMULAS[0], card_brand="@evil")
    client = Client()
    client.force_login(administrator)
    rows = _csv_cells(client.get("/payments/export.csv"))
    legal_name = rows[0].index("merchant")
    assert rows[1][legal_name] == "'" + FORMULAS[0]
    assert "'@evil" in rows[1]


def test_the_audit_export_neutralises_formula_cells(administrator: Any, settings: Any) -> None:
    settings.STAFF_REQUIRE_OTP = False
    insider = make_staff("=cmd|' /C calc'!A0")
    with context.bind(actor=insider):
        CapturedPaymentFactory()
    client = Client()
    client.force_login(administrator)
    rows = _csv_cells(client.get("/audits/export.csv"))
    user = rows[0].index("user")
    assert "'=cmd|' /C calc'!A0" in {row[user] for row in rows[1:]}
    assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for row in rows for cell in row)
