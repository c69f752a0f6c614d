"""The role x URL x method matrix (issue #10), generated, not listed by hand.

URLs come from walking django.urls.get_resolver(); path converters are filled with the ids of
objects the factories made; roles come from audits/roles.py. Two rules:

- every URL except ANONYMOUS_ALLOWED refuses an anonymous visitor (a redirect to sign-in, or
  401/403), for GET and POST alike, and writes nothing;
- every state-changing request (POST, PUT, PATCH, DELETE) refuses each role that lacks the
  permission it needs, and writes nothing (row counts of every table, the audit trails
  included, before and after);
- a person's own pages (OWN_ONLY: their second-factor devices) are open to every role for
  their own objects, and refuse each role another person's with a 404, writing nothing.

A new URL is tested the moment it is added; a state-changing one with no entry in REQUIRED
fails the test until someone says which permission it needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits import roles
from audits.models import ComplianceReport
from kyc.owners import beneficial_owner_add
from payments.fraud.models import FraudAlert
from payments.fraud.services import fraud_rule_create
from payments.models import ApiToken, WebhookEvent
from payments.services.payments import payment_record
from payments.services.refunds import refund_request
from tests.api.conftest import issue
from tests.helpers import row_counts
from tests.kyc.factories import KycCaseFactory, KycDocumentFactory
from tests.payments.factories import CapturedPaymentFactory, ChargebackFactory, MerchantFactory

pytestmark = pytest.mark.django_db

ROLES = [*roles.ROLE_PERMISSIONS, "staff without a role"]

# Open on purpose: signing in and out, health probes, gateways (they prove themselves with a
# signature), the API schema and docs (issue 10 point 7 closes them in production settings on
# another branch), and the API's catch-all 404.
ANONYMOUS_ALLOWED = {
    "admin:login",
    "admin:logout",
    "healthz",
    "readyz",
    "webhook-stripe",
    "webhook-braintree",
    "webhook-sandbox",
    "api-schema",
    "api-docs",
    "api-catch-all",
}

# URL name (with the slug, where it picks an action) -> the permission a change needs.
REQUIRED: dict[str, str] = {
    "home": "",  # redirects only
    "overview": "",
    "metrics": "",  # a scraper's token (METRICS_TOKEN), not a person's: tests/test_metrics.py
    "payments:payment-list": "",
    "payments:payment-export": "",
    "payments:approvals": "",
    "payments:reconciliation": "",
    "payments:webhook-list": "",
    "payments:dispute-list": "",
    "payments:dispute-detail": "",
    "payments:fraud-alerts": "",
    "payments:fraud-alert": "",
    "payments:fraud-rules": "",
    "payments:fraud-rule": "payments.change_fraudrule",
    "payments:fraud-alert-action/assign": "payments.review_fraudalert",
    "payments:fraud-alert-action/note": "payments.review_fraudalert",
    "payments:fraud-alert-action/close": "payments.review_fraudalert",
    "kyc:queue": "",
    "kyc:case": "",
    "kyc:merchant": "",
    "kyc:document-file/view": "",
    "kyc:document-file/download": "",
    "audits:search": "",
    "audits:export-csv": "",
    "audits:export-evidence": "",
    "audits:object": "",
    "audits:compliance": "",
    "audits:compliance-download": "",
    "audits:compliance-run": "audits.run_compliancereport",
    "payments:payment-detail": "payments.add_refund",
    "payments:approval-decide": "payments.approve_refund",
    "payments:webhook-replay": "payments.change_webhookevent",
    "payments:dispute-action/save": "payments.change_chargeback",
    "payments:dispute-action/submit": "payments.change_chargeback",
    "payments:dispute-action/accept": "payments.change_chargeback",
    "payments:dispute-action/assign": "payments.change_chargeback",
    "kyc:take-next": "kyc.change_kyccase",
    "kyc:case-note": "kyc.add_casenote",
    "kyc:document-review": "kyc.change_kycdocument",
    "kyc:screening-dispose": "kyc.change_kyccase",
    "kyc:case-action/take": "kyc.change_kyccase",
    "kyc:case-action/reassign": "kyc.reassign_kyccase",
    "kyc:case-action/approve": "kyc.decide_kyccase",
    "kyc:case-action/reject": "kyc.decide_kyccase",
    "kyc:merchant-suspend": "kyc.decide_kyccase",
    "kyc:merchant-subject-export": "kyc.decide_kyccase",
    "kyc:merchant-subject-erase": "payments.erase_merchant_contact",
    "kyc:owner-add": "kyc.add_beneficialowner",
    "kyc:owner-edit": "kyc.change_beneficialowner",
    "api-merchant-list/post": "payments.add_merchant",
    "api-merchant-detail/patch": "payments.change_merchant",
    "api-merchant-detail/put": "payments.change_merchant",
    "api-merchant-payouts/post": "payments.change_merchant",
    "api-payout-account/post": "payments.change_merchant",
    "api-payout-account-confirm/post": "payments.change_merchant",
    "api-payment-list/post": "payments.add_payment",
    "api-payment-cancel/post": "payments.change_payment",
    "api-payment-refund/post": "payments.add_refund",
    "api-chargeback-evidence/post": "payments.change_chargeback",
    "api-kyc-case-list/post": "kyc.add_kyccase",
    "api-kyc-case-submit/post": "kyc.change_kyccase",
    "api-kyc-case-resubmit/post": "kyc.change_kyccase",
    "api-kyc-document-upload/post": "kyc.add_kycdocument",
    "api-beneficial-owner-list/post": "kyc.add_beneficialowner",
    "api-beneficial-owner-detail/patch": "kyc.change_beneficialowner",
}

# A person's own credentials: every role may change its own (so no permission is named in
# REQUIRED), nobody anyone else's. URL name -> why. Those that take an id are asked below by
# every role about another person's object: a 404, and nothing written.
OWN_ONLY: dict[str, str] = {
    "audits:second-factor": "lists and adds the signed-in person's own authenticators",
    "audits:second-factor-confirm": "confirms one of the signed-in person's own authenticators",
    "audits:second-factor-remove": "removes one of the signed-in person's own authenticators",
}

# Slugs a URL's view understands: each is its own row of the matrix.
SLUGS: dict[str, list[str]] = {
    "payments:dispute-action": ["save", "submit", "accept", "assign"],
    "payments:fraud-alert-action": ["assign", "note", "close"],
    "kyc:case-action": ["take", "reassign", "approve", "reject"],
    "kyc:document-file": ["view", "download"],
}

# Known holes the matrix may mark as expected failures, with the reason (none today: what it
# found when it was written, staff tokens doing more than their owner's role and an Auditor
# rejecting approvals, is fixed).
XFAIL: dict[str, Any] = {}


@dataclass(frozen=True)
class Route:
    key: str  # REQUIRED's key
    name: str
    path: str  # with {placeholders} for the world's ids
    methods: tuple[str, ...]  # the state-changing methods the view answers


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[Any]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace or ""]))
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield prefix + str(pattern.pattern), name, pattern


def _methods(pattern: URLPattern) -> tuple[str, ...]:
    view_class = getattr(pattern.callback, "view_class", None) or getattr(
        pattern.callback, "cls", None
    )
    if view_class is None:
        return ("post",)
    return tuple(m for m in ("post", "put", "patch", "delete") if hasattr(view_class, m))


def _template(route: str, name: str | None) -> str:
    """A resolver route as a path with {placeholders}; regex routes get fixed examples."""
    if route.startswith("^") or "(?P<" in route:
        if route == "^api/":
            return "/api/nowhere/"
        if "app_label" in route:  # the console's app index
            return "/" + re.sub(r"\^?(.*)\(\?P<app_label>([\w]+)\|?.*?\)/\$", r"\1\2/", route)
        return "/" + route.strip("^$")
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def routes() -> list[Route]:
    out = []
    for route, name, pattern in _walk(get_resolver().url_patterns):
        if not name:
            # The console's unnamed routes redirect to named ones; the API's catch-all 404s.
            name = "api-catch-all" if route == "^api/" else f"admin:unnamed:{route}"
        template = _template(route, name)
        for slug in SLUGS.get(name, [None]):
            key = f"{name}/{slug}" if slug else name
            path = template.replace("{action}", slug or "").replace("{disposition}", slug or "")
            out.append(Route(key, name, path, _methods(pattern)))
    return out


ROUTES = routes()


def _user(role: str) -> User:
    # No password: hashing one per role would cost more than the whole matrix.
    user = User.objects.create(username=re.sub(r"\W", "-", role.lower()), is_staff=True)
    if role in roles.ROLE_PERMISSIONS:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def world(settings: Any) -> dict[str, Any]:
    settings.STAFF_REQUIRE_OTP = False
    settings.API_THROTTLE_RATES = {"token": "100000/min", "ip": "100000/min"}
    settings.REFUND_APPROVAL_THRESHOLD = 1
    users = {role: _user(role) for role in ROLES}
    payment = CapturedPaymentFactory(amount=500_000, captured_amount=500_000)
    chargeback = ChargebackFactory(payment__merchant=payment.merchant)
    case = KycCaseFactory(status="in_review", assignee=None)
    document = KycDocumentFactory(case=case)
    owner = beneficial_owner_add(merchant=case.merchant, **OWNER, actor=None)
    approval = refund_request(
        payment=payment,
        amount=1_000,
        reason="duplicate",
        reason_detail="charged twice",
        actor=users[roles.ADMINISTRATOR],
    ).approval
    # A rule and the alert it raised on a merchant's second payment in the hour.
    fraud_rule = fraud_rule_create(
        key="matrix-burst",
        name="Matrix burst",
        kind="velocity_count",
        params={"subject": "payment", "key": "merchant", "window_minutes": 60, "max_count": 1},
        score=60,
        actor=users[roles.COMPLIANCE_OFFICER],
    )
    shop = MerchantFactory()
    for _ in range(2):
        payment_record(merchant=shop, gateway="stripe", amount=100, currency="EUR")
    fraud_alert = FraudAlert.objects.get()
    # Someone else's authenticator, outside the roles under test (OWN_ONLY).
    someone_else = User.objects.create(username="someone-else", is_staff=True)
    device = TOTPDevice.objects.create(user=someone_else, name="not yours", confirmed=False)
    with transaction.atomic():
        event = WebhookEvent.objects.create(
            provider="stripe", event_id="evt_matrix", event_type="charge.refunded", payload={}
        )
    ids = {
        "pk": 0,  # per URL, below
        "payment": payment.pk,
        "merchant": payment.merchant_id,
        "chargeback": chargeback.pk,
        "case": case.pk,
        "document": document.pk,
        "owner": owner.pk,
        "approval": approval.pk,
        "event": event.pk,
        "device": device.pk,
        "report": ComplianceReport.objects.create(
            source="command", findings=[], passed=0, failed=0, unknown=0
        ).pk,
        "fmt": "json",
        "object_type": "payments.payment",
        "object_id": str(payment.pk),
        "content_type_id": 1,
        "fraud_rule": fraud_rule.pk,
        "fraud_alert": fraud_alert.pk,
    }
    return {
        "users": users,
        "ids": ids,
        "case": case,
        "tokens": {role: issue(user, list(ApiToken.SCOPES)) for role, user in users.items()},
    }


# Which object an <int:pk> (or the console's <path:object_id>) means for a URL.
# A beneficial owner's fields that a permitted person could save (25 %: room for more).
OWNER = {
    "full_name": "Matrix Owner",
    "date_of_birth": "1980-01-01",
    "nationality": "GB",
    "residential_address": "1 Matrix Lane",
    "ownership_bp": 2_500,
}


def _pk_for(name: str, ids: dict[str, Any]) -> Any:
    for prefix, key in (
        ("audits:second-factor", "device"),
        ("audits:compliance", "report"),
        ("payments:approval-decide", "approval"),
        ("payments:webhook-replay", "event"),
        ("payments:dispute", "chargeback"),
        ("payments:fraud-alert", "fraud_alert"),
        ("payments:fraud-rule", "fraud_rule"),
        ("payments:payment", "payment"),
        ("kyc:document-file", "document"),
        ("kyc:merchant", "merchant"),
        ("kyc:owner-add", "merchant"),
        ("kyc:owner-edit", "owner"),
        ("api-beneficial-owner-list", "merchant"),
        ("api-beneficial-owner-detail", "owner"),
        ("kyc:", "case"),
        ("api-merchant", "merchant"),
        ("api-payment", "payment"),
        ("api-chargeback", "chargeback"),
        ("api-kyc", "case"),
    ):
        if name.startswith(prefix):
            return ids[key]
    return ids["payment"]


def console_routes() -> dict[str, tuple[Any, str]]:
    """admin:<app>_<model>_<action> -> (model, action), from the console's own registry."""
    return {
        f"admin:{model._meta.app_label}_{model._meta.model_name}_{action}": (model, action)
        for model in admin.site._registry
        for action in ("add", "change", "delete", "history")
    }


def _admin_object_id(name: str, ids: dict[str, Any]) -> Any:
    found = console_routes().get(name)
    if not found or found[1] == "add":
        return ids["payment"]
    model = found[0]
    row = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
    return row if row is not None else 1


def url_for(route: Route, ids: dict[str, Any]) -> str:
    values = {
        **ids,
        "pk": _pk_for(route.name, ids),
        "object_id": _admin_object_id(route.name, ids)
        if route.name.startswith("admin:")
        else ids["object_id"],
        "url": "payments/payment/",
    }
    # Any other converter (the console's second-factor pages take <id>) gets an existing id.
    return route.path.format_map(_Fill(values, ids["payment"]))


class _Fill(dict):
    def __init__(self, values: dict[str, Any], default: Any) -> None:
        super().__init__(values)
        self.default = default

    def __missing__(self, key: str) -> Any:
        return self.default


def _body(route: Route, world: dict[str, Any]) -> dict[str, Any]:
    """A body that a permitted person's request would carry, so a missing check shows."""
    case = world["case"]
    slug = route.key.rsplit("/", 1)[-1]
    bodies: dict[str, dict[str, Any]] = {
        "payments:payment-detail": {
            "amount": "1.00",
            "reason": "duplicate",
            "reason_detail": "charged twice",
            "confirm": "on",
        },
        "payments:approval-decide": {"decision": "reject", "note": "no"},
        "payments:fraud-alert-action": {"text": "a note", "outcome": "fraud", "note": "seen"},
        "payments:fraud-rule": {
            "name": "Matrix burst",
            "params": json.dumps(
                {"subject": "payment", "key": "merchant", "window_minutes": 60, "max_count": 5}
            ),
            "score": "40",
            "note": "looser",
            "save": "1",
        },
        "payments:dispute-action": {"text": "tracking", "reason": "fair", "confirm": "on"},
        "kyc:case-note": {"text": "a note"},
        "kyc:case-action": {
            "seen_status": case.status,
            "confirm": "on",
            "reason": "because",
            "reason_code": "other",
            "reason_text": "because",
            "assignee": world["users"][roles.KYC_ANALYST].pk,
        },
        "kyc:merchant-suspend": {"reason": "fraud", "confirm": "on", "seen_status": "active"},
        "kyc:owner-add": {**OWNER, "held": "direct"},
        "kyc:owner-edit": {**OWNER, "held": "direct"},
    }
    if route.name.startswith("api-beneficial-owner"):
        return {**OWNER, "full_name": "Matrix Owner"}
    if route.name.startswith("api-"):
        return {
            "legal_name": "Matrix Ltd",
            "country": "GB",
            "contact_email": "m@example.com",
            "merchant": world["ids"]["merchant"],
            "gateway": "stripe",
            "amount": 100,
            "currency": "EUR",
            "payment_method": "pm_card_visa",
            "reason": "duplicate",
            "reason_detail": "x",
            "text": "evidence",
            "kind": "kyb",
        }
    return bodies.get(route.name, {"confirm": "on"}) | ({"action": slug} if slug else {})


def _is_sign_in_redirect(response: Any) -> bool:
    return response.status_code in (301, 302) and "/admin/login/" in response["Location"]


def test_every_url_is_walked_and_every_state_change_has_a_permission() -> None:
    names = {route.name for route in ROUTES}
    assert {"payments:payment-detail", "api-payment-refund", "kyc:case-action"} <= names
    unmapped = sorted(
        route.key
        for route in ROUTES
        if not route.name.startswith("admin:")
        and route.name not in ANONYMOUS_ALLOWED
        and (
            any(f"{route.key}/{method}" not in REQUIRED for method in route.methods)
            if route.name.startswith("api-")
            else route.key not in REQUIRED and route.key not in OWN_ONLY
        )
    )
    assert not unmapped, f"say which permission these need (REQUIRED): {unmapped}"


def test_every_url_refuses_anonymous_visitors_and_writes_nothing(world: dict[str, Any]) -> None:
    client = Client(raise_request_exception=False)
    holes = []
    asked = 0
    for route in ROUTES:
        if route.name in ANONYMOUS_ALLOWED:
            continue
        url = url_for(route, world["ids"])
        for method in ("get", "post"):
            asked += 1
            before = row_counts()
            response = client.generic(method.upper(), url)
            refused = _is_sign_in_redirect(response) or response.status_code in (401, 403)
            if not refused or row_counts() != before:
                holes.append((method, url, response.status_code))
            if "script-src 'self'" not in response.get("Content-Security-Policy", ""):
                holes.append((method, url, "no Content-Security-Policy"))
    assert not holes, holes
    assert asked > 300  # the console's ~130 URLs, the screens' and the API's, twice each


def _state_changing_cases() -> list[Any]:
    cases = []
    for route in ROUTES:
        if route.name.startswith("admin:") or route.name in ANONYMOUS_ALLOWED:
            continue
        for method in route.methods:
            key = f"{route.key}/{method}" if route.name.startswith("api-") else route.key
            permission = REQUIRED.get(key, "")
            if not permission:
                continue  # reads: no state to change
            marks = [XFAIL[key]] if key in XFAIL else []
            cases.append(
                pytest.param(route, method, permission, marks=marks, id=f"{method} {route.key}")
            )
    return cases


@pytest.mark.parametrize(("route", "method", "permission"), _state_changing_cases())
def test_each_role_without_the_permission_is_refused_and_nothing_changes(
    route: Route, method: str, permission: str, world: dict[str, Any]
) -> None:
    url = url_for(route, world["ids"])
    holes = []
    for role, user in world["users"].items():
        if user.has_perm(permission):
            continue
        client = Client(raise_request_exception=False)
        headers: dict[str, str] = {}
        if route.name.startswith("api-"):
            headers["HTTP_AUTHORIZATION"] = f"Bearer {world['tokens'][role]}"
            headers["HTTP_IDEMPOTENCY_KEY"] = f"matrix-{role}-{method}"
            data, content_type = json.dumps(_body(route, world)), "application/json"
        else:
            client.force_login(user)
            data = urlencode(_body(route, world))
            content_type = "application/x-www-form-urlencoded"
        before = row_counts()
        response = client.generic(method.upper(), url, data, content_type=content_type, **headers)
        after = row_counts()
        # A refusal is a 401/403/404/405, or a screen's redirect back with its message.
        if response.status_code >= 500 or after != before or 200 <= response.status_code < 300:
            changed = sorted(k for k in before if before[k] != after[k])
            holes.append((role, response.status_code, changed))
        if "script-src 'self'" not in response.get("Content-Security-Policy", ""):
            holes.append((role, response.status_code, "no Content-Security-Policy"))
    assert not holes, holes


def _post_as(user: User, url: str, data: dict[str, str]) -> tuple[Any, bool]:
    """POST as `user` on the screens: the response, and whether any table's row count moved."""
    client = Client(raise_request_exception=False)
    client.force_login(user)
    before = row_counts()
    response = client.post(url, data)
    return response, row_counts() != before


def test_the_console_refuses_add_change_delete_to_roles_without_that_permission(
    world: dict[str, Any],
) -> None:
    holes = []
    for route in ROUTES:
        found = console_routes().get(route.name)
        if not found or found[1] == "history":
            continue
        model, action = found
        permission = f"{model._meta.app_label}.{action}_{model._meta.model_name}"
        url = url_for(route, world["ids"])
        for role, user in world["users"].items():
            if user.has_perm(permission):
                continue
            response, wrote = _post_as(user, url, {"post": "yes"})
            if response.status_code != 403 or wrote:
                holes.append((role, url, response.status_code))
    assert not holes, holes


def test_each_role_is_refused_another_persons_own_only_object_and_nothing_changes(
    world: dict[str, Any],
) -> None:
    asked = [route for route in ROUTES if route.name in OWN_ONLY and "{pk}" in route.path]
    assert {route.name for route in asked} == {
        "audits:second-factor-confirm",
        "audits:second-factor-remove",
    }
    holes = []
    for route in asked:
        url = url_for(route, world["ids"])
        for role, user in world["users"].items():
            response, wrote = _post_as(user, url, {"token": "123456"})
            if response.status_code != 404 or wrote:
                holes.append((role, url, response.status_code))
            if "script-src 'self'" not in response.get("Content-Security-Policy", ""):
                holes.append((role, url, "no Content-Security-Policy"))
    assert not holes, holes
    assert TOTPDevice.objects.get(pk=world["ids"]["device"]).confirmed is False
