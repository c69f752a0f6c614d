from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from payments.integration.tokens import api_token_create
from payments.models import ApiToken


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.clear()


def issue(owner: Any, scopes: list[str], merchant: Any = None, **kwargs: Any) -> str:
    return api_token_create(owner=owner, name="test", scopes=scopes, merchant=merchant, **kwargs)[1]


def expire(raw: str) -> None:
    with transaction.atomic():
        token = ApiToken.objects.get(prefix=raw.split("_")[1])
        token.expires_at = timezone.now() - timedelta(seconds=1)
        token.created_at = token.expires_at - timedelta(hours=1)
        token.save()


def client_for(raw: str | None, **headers: str) -> APIClient:
    client = APIClient()
    if raw:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}", **headers)
    return client


@pytest.fixture
def integration_user(db: None) -> Any:
    """The owner of merchant-bound tokens (no role needed): the audit trail names it."""
    return User.objects.create_user("integration", email="integration@example.com")
