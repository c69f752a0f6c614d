"""The OpenAPI contract: generated, valid, served offline, and the API honours it under
fuzzing (schemathesis against the WSGI app, bounded so the suite stays quick)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, settings

from config.wsgi import application
from payments.models import ApiToken
from tests.api.conftest import issue
from tests.payments.factories import ChargebackFactory, MerchantFactory

SHAPE = {"type", "message", "errors"}


@pytest.fixture
def staff_client(administrator) -> Client:
    client = Client()
    client.force_login(administrator)
    return client


@pytest.mark.django_db
def test_the_schema_is_valid_openapi_and_describes_auth_and_errors(staff_client) -> None:
    response = staff_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    assert schema["components"]["securitySchemes"]["ApiToken"]["scheme"] == "bearer"
    paths = schema["paths"]
    assert {"/api/v1/payments/", "/api/v1/payments/{id}/refunds/", "/api/v1/audit-trail/"} <= set(
        paths
    )
    create = paths["/api/v1/payments/"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in create["parameters"])
    assert {"201", "400", "401", "403", "409", "422", "429"} <= set(create["responses"])
    listing = paths["/api/v1/payments/"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"status", "created_after", "created_before", "amount_min", "amount_max", "cursor"} <= (
        names
    )


@pytest.mark.django_db
def test_the_docs_are_served_without_a_cdn(staff_client) -> None:
    page = staff_client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower() and "https://" not in page.replace("https://swagger", "")
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def fuzz_tokens(db, administrator, integration_user, settings) -> Iterator[dict[str, str]]:
    settings.API_THROTTLE_RATES = {"token": "100000/min", "ip": "100000/min"}
    merchant = MerchantFactory()
    ChargebackFactory(payment__merchant=merchant)
    # Called as WSGI, Django would close the test's connection (and its transaction) after
    # each request; the test client avoids that the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {
            "staff": issue(administrator, list(ApiToken.SCOPES)),
            "merchant": issue(integration_user, list(ApiToken.SCOPES), merchant=merchant),
        }
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_the_schema_allows_gets_a_server_error(
    case, fuzz_tokens, local_stripe, local_braintree
) -> None:
    for raw in fuzz_tokens.values():
        response = case.call(headers={"Authorization": f"Bearer {raw}"})
        assert response.status_code < 500, (case.method, case.path, response.text)
        if response.status_code >= 400:
            assert set(response.json()) == SHAPE, response.text


# Issue 10 point 6, added to the fuzzing: each operation of the schema, given each bad input
# below (on top of what hypothesis generates above), answers a 4xx in the API's error shape.
BAD_INPUTS: dict[str, dict[str, Any]] = {
    "random base64 cursor": {"query": {"cursor": "q83vEjRWeJq8"}},
    "cursor with a text position": {"query": {"cursor": "cD1hYmM="}},
    "cursor past bigint": {"query": {"cursor": "cD05OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}},
    "NUL in a query parameter": {"query": {"status": "a\x00b"}},
    "NUL in a field": {"body": "a\x00b"},
    "lone surrogate in a field": {"body": "a\ud800b"},
    "5 MB field": {"body": "x" * (5 * 1024 * 1024)},
}


_PATH_MODELS = [
    ("/api/v1/merchants/", "Merchant"),
    ("/api/v1/chargebacks/", "Chargeback"),
]


def _bad_cases() -> list[Any]:
    params = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for name in BAD_INPUTS:
            takes_cursor = any(p.name == "cursor" for p in operation.query)
            takes_json = any(b.media_type == "application/json" for b in operation.body)
            if ("cursor" in name and not takes_cursor) or ("field" in name and not takes_json):
                continue
            params.append(pytest.param(operation, name, id=f"{operation.label} / {name}"))
    return params


@pytest.mark.parametrize(("operation", "bad"), _bad_cases())
def test_each_operation_answers_each_bad_input_with_a_4xx(operation, bad, fuzz_tokens) -> None:
    from tests.access.test_bad_input import row_counts

    spec = BAD_INPUTS[bad]
    # Real ids, so that a body gets past the object lookup to the parser.
    from django.apps import apps

    model = apps.get_model(
        "payments",
        next((m for prefix, m in _PATH_MODELS if operation.path.startswith(prefix)), "Payment"),
    )
    pk = model.objects.values_list("pk", flat=True).first() or 1
    path_parameters = {name: pk for name in re.findall(r"{(\w+)}", operation.path)}
    kwargs: dict[str, Any] = {"path_parameters": path_parameters, "query": spec.get("query")}
    if "body" in spec:
        kwargs["body"] = {"legal_name": spec["body"], "reason_detail": spec["body"]}
        kwargs["media_type"] = "application/json"
    case = operation.Case(**kwargs)
    before = row_counts()
    response = case.call(headers={"Authorization": f"Bearer {fuzz_tokens['staff']}"})
    assert 400 <= response.status_code < 500, (bad, response.status_code, response.text[:300])
    assert set(response.json()) == SHAPE, response.text[:300]
    assert row_counts() == before
