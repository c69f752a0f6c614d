"""One error shape everywhere under /api/, rate limits with Retry-After."""

from __future__ import annotations

import pytest
from django.test import Client

from payments.api import selectors
from payments.integration import errors
from tests.api.conftest import client_for, issue
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

SHAPE = {"type", "message", "errors"}


def test_an_unknown_path_is_a_json_404() -> None:
    response = Client().get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"type": "not_found", "message": "Not found.", "errors": {}}


def test_an_unknown_id_is_a_json_404(administrator) -> None:
    response = client_for(issue(administrator, ["payments:read"])).get("/api/v1/payments/999/")
    assert (response.status_code, response.json()["type"]) == (404, "not_found")


def test_a_wrong_method_is_a_json_405(administrator) -> None:
    response = client_for(issue(administrator, ["payments:read"])).delete("/api/v1/payments/")
    assert response.status_code == 405
    assert response.json()["type"] == "method_not_allowed"


def test_validation_errors_name_each_field(administrator) -> None:
    raw = issue(administrator, ["merchants:write"])
    response = client_for(raw).post(
        "/api/v1/merchants/", {"legal_name": "", "country": "GBR"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == SHAPE and body["type"] == "validation_error"
    assert set(body["errors"]) == {"legal_name", "country", "contact_email"}


def test_a_malformed_json_body_is_a_400_in_the_shape(administrator) -> None:
    raw = issue(administrator, ["merchants:write"])
    response = client_for(raw).generic(
        "POST", "/api/v1/merchants/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400 and set(response.json()) == SHAPE


def test_an_unexpected_error_is_a_json_500_without_details(administrator, monkeypatch) -> None:
    def broken(**kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(selectors, "payment_list_api", broken)
    response = client_for(issue(administrator, ["payments:read"])).get("/api/v1/payments/")
    assert response.status_code == 500
    assert response.json()["type"] == "server_error"
    assert "hunter2" not in response.content.decode()


def test_handlers_answer_json_under_api_and_html_elsewhere(rf) -> None:
    assert errors.handler500(rf.get("/api/v1/payments/"))["Content-Type"] == "application/json"
    assert "text/html" in errors.handler500(rf.get("/payments/"))["Content-Type"]
    assert errors.handler404(rf.get("/api/x"), Exception()).status_code == 404


def test_a_merchant_token_cannot_use_staff_endpoints(integration_user) -> None:
    merchant = MerchantFactory()
    raw = issue(integration_user, ["merchants:read"], merchant=merchant)
    response = client_for(raw).get(f"/api/v1/merchants/{merchant.pk}/")
    assert response.status_code == 403 and set(response.json()) == SHAPE


def test_each_token_has_its_own_rate_limit_with_retry_after(administrator, settings) -> None:
    settings.API_THROTTLE_RATES = {"token": "2/min", "ip": "100/min"}
    first, second = issue(administrator, ["payments:read"]), issue(administrator, ["payments:read"])
    for _ in range(2):
        assert client_for(first).get("/api/v1/payments/").status_code == 200
    limited = client_for(first).get("/api/v1/payments/")
    assert limited.status_code == 429 and limited.json()["type"] == "throttled"
    assert int(limited["Retry-After"]) > 0
    assert client_for(second).get("/api/v1/payments/").status_code == 200


def test_an_ip_is_limited_before_its_tokens_are_checked(settings) -> None:
    settings.API_THROTTLE_RATES = {"token": "100/min", "ip": "2/min"}
    client = Client(REMOTE_ADDR="192.0.2.9")
    for _ in range(2):
        assert (
            client.get("/api/v1/payments/", HTTP_AUTHORIZATION="Bearer bo_x_y").status_code == 401
        )
    limited = client.get("/api/v1/payments/", HTTP_AUTHORIZATION="Bearer bo_x_y")
    assert limited.status_code == 429 and "Retry-After" in limited
    assert Client(REMOTE_ADDR="192.0.2.10").get("/api/v1/payments/").status_code == 401


def test_an_id_beyond_any_column_is_a_404_not_a_crash(administrator) -> None:
    raw = issue(administrator, ["payments:read"])
    response = client_for(raw).get("/api/v1/payments/99999999999999999999999/")
    assert response.status_code == 404
