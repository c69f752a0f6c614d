"""The console's row checkbox is Django's own, written without the form template engine."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from tests.payments.factories import MerchantFactory, PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("make", [PaymentFactory, MerchantFactory])
def test_the_checkbox_is_the_html_django_renders(make) -> None:
    obj = make()
    model_admin = admin.site._registry[type(obj)]
    assert model_admin.action_checkbox(obj) == admin.ModelAdmin.action_checkbox(model_admin, obj)


def test_the_changelist_shows_a_checkbox_per_row(admin_client) -> None:
    payments = [PaymentFactory() for _ in range(3)]
    response = admin_client.get(reverse("admin:payments_payment_changelist"))
    for payment in payments:
        assert (
            f'<input type="checkbox" name="_selected_action" value="{payment.pk}" '
            'class="action-select"' in response.content.decode()
        )
