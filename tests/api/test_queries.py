"""Lists keep the same number of queries per page whatever the table holds."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from payments.models import ApiToken
from tests.api.conftest import client_for, issue
from tests.payments.factories import ChargebackFactory, MerchantFactory, PaymentFactory

pytestmark = pytest.mark.django_db


def _queries(client, path: str) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    assert response.status_code == 200, response.content
    return [q["sql"] for q in ctx.captured_queries]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/payments/", "/api/v1/chargebacks/", "/api/v1/merchants/", "/api/v1/audit-trail/"],
)
def test_a_page_costs_the_same_with_10_or_many_rows(path, administrator) -> None:
    client = client_for(issue(administrator, list(ApiToken.SCOPES)))
    merchant = MerchantFactory()
    audited = PaymentFactory(merchant=merchant)

    def grow(n: int) -> None:
        for i in range(n):
            ChargebackFactory(payment__merchant=merchant)  # a merchant, payment, chargeback
            with transaction.atomic():
                audited.description = f"change {i}"  # one more audit row
                audited.save()

    if "audit-trail" in path:
        path = f"{path}?object_type=payments.payment&object_id={audited.pk}"
    grow(10)
    few = _queries(client, path)
    grow(90)
    many = _queries(client, path)
    assert len(few) == len(many), "\n".join(many)


def test_a_merchant_tokens_payment_page_is_six_queries(
    integration_user, django_assert_num_queries
) -> None:
    merchant = MerchantFactory()
    PaymentFactory.create_batch(60, merchant=merchant)
    client = client_for(issue(integration_user, ["payments:read"], merchant=merchant))
    # the token with its owner and merchant; savepoint; the token's row read for the audit
    # trail's before-state; its last use written; release; the page (51 rows, no COUNT)
    with django_assert_num_queries(6):
        response = client.get("/api/v1/payments/")
    assert len(response.json()["results"]) == 50
