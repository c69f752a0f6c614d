from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import ProtectedError
from django.urls import reverse

from audits import context
from tests.factories import UserFactory
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def clerk_with_history() -> User:
    clerk = UserFactory(username="clerk")
    with context.bind(actor=clerk):
        MerchantFactory()
    return clerk


def test_deleting_a_user_with_history_is_refused(clerk_with_history: User) -> None:
    with (
        pytest.raises(ProtectedError, match="deactivate the account instead"),
        transaction.atomic(),
    ):
        clerk_with_history.delete()
    assert User.objects.filter(pk=clerk_with_history.pk).exists()


def test_bulk_deleting_users_with_history_is_refused(clerk_with_history: User) -> None:
    with pytest.raises(ProtectedError), transaction.atomic():
        User.objects.filter(username="clerk").delete()
    assert User.objects.filter(pk=clerk_with_history.pk).exists()


def test_a_user_without_history_can_be_deleted() -> None:
    user = UserFactory()
    user.delete()
    assert not User.objects.filter(pk=user.pk).exists()


def test_the_console_explains_why_it_will_not_delete(admin_client, clerk_with_history) -> None:
    url = reverse("admin:auth_user_delete", args=[clerk_with_history.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "cannot be deleted: deactivate the account instead" in page.content.decode()
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 403 or "deactivate" in response.content.decode()
    assert User.objects.filter(pk=clerk_with_history.pk).exists()


def test_the_system_user_cannot_sign_in(client) -> None:
    system = User.objects.get(pk=context.system_user_id())
    assert not system.is_active
    assert not system.has_usable_password()
    assert not client.login(username=context.SYSTEM_USERNAME, password="")
