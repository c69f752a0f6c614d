"""Security headers on every page we render, and error pages in the app's layout (issue #10,
points 5 and 8)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import path

from config import urls as project_urls

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)


def _policy(response: Any) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def _check_page(response: Any) -> None:
    assert response.status_code == 200, response.status_code
    policy = _policy(response)
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["default-src"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    body = response.content.decode()
    # Nothing on the page needs an inline script: every <script> names a file.
    assert not INLINE_SCRIPT.search(body), INLINE_SCRIPT.search(body).group(0)
    assert not re.search(r"\son(click|load|submit|change)=", body, re.I)


@pytest.fixture
def console(administrator: User) -> Client:
    client = Client()
    client.force_login(administrator)
    return client


def test_the_sign_in_page(client: Client) -> None:
    _check_page(client.get("/admin/login/"))


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/auth/user/",
        "/admin/auth/user/{me}/change/",
        "/admin/payments/payment/",
        "/admin/axes/accessattempt/",
        "/kyc/",
        "/payments/",
        "/disputes/",
        "/audits/",
        "/api/docs/",
    ],
)
def test_every_page_has_a_policy_without_inline_scripts(
    console: Client, administrator: User, url: str
) -> None:
    _check_page(console.get(url.format(me=administrator.pk)))


def test_the_api_docs_start_from_a_script_file(console: Client) -> None:
    page = console.get("/api/docs/").content.decode()
    sources = re.findall(r'<script src="([^"]+)"', page)
    assert sources and all(src.startswith("/") for src in sources)
    start = console.get(sources[-1].replace("&amp;", "&"))
    assert start.status_code == 200
    assert "javascript" in start["Content-Type"]
    assert "SwaggerUIBundle" in start.content.decode()


def test_the_cookie_and_transport_settings_stay(settings: Any) -> None:
    assert settings.SESSION_COOKIE_HTTPONLY and settings.CSRF_COOKIE_HTTPONLY
    assert settings.X_FRAME_OPTIONS == "DENY"
    assert settings.SECURE_REFERRER_POLICY == "same-origin"


# --- error pages ------------------------------------------------------------------------------


def _boom(request: Any) -> Any:
    raise RuntimeError("boom")


def _bare_refusal(request: Any) -> Any:
    raise PermissionDenied


urlpatterns = [
    *project_urls.urlpatterns,
    path("test-500/", _boom),
    path("test-403/", _bare_refusal),
]
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500


def _in_layout(body: str, user: User) -> None:
    assert '<nav aria-label="Main">' in body
    assert user.username in body and 'action="/admin/logout/"' in body


def test_a_403_names_the_missing_permission(client: Client, analyst: User) -> None:
    client.force_login(analyst)
    answer = client.get("/payments/")
    assert answer.status_code == 403
    body = answer.content.decode()
    assert "payments.view_payment" in body and "Can view payment" in body
    _in_layout(body, analyst)
    assert "Content-Security-Policy" in answer


@pytest.mark.urls("tests.access.test_headers")
def test_a_bare_403_still_uses_the_layout(client: Client, analyst: User) -> None:
    client.force_login(analyst)
    answer = client.get("/test-403/")
    assert answer.status_code == 403
    _in_layout(answer.content.decode(), analyst)


def test_a_404_uses_the_layout(client: Client, analyst: User) -> None:
    client.force_login(analyst)
    answer = client.get("/no-such-page/")
    assert answer.status_code == 404
    _in_layout(answer.content.decode(), analyst)
    # Under /api/ it stays JSON.
    assert client.get("/api/v1/no-such-thing/").json()["type"] == "not_found"


@pytest.mark.urls("tests.access.test_headers")
def test_a_500_uses_the_layout(analyst: User, settings: Any) -> None:
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(analyst)
    answer = client.get("/test-500/")
    assert answer.status_code == 500
    body = answer.content.decode()
    assert "Something went wrong" in body and "boom" not in body
    _in_layout(body, analyst)


# The same checks in Chromium: tests/e2e/test_content_security_policy.py (one browser per
# session, from tests/e2e/conftest.py).
