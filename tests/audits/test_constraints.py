"""Check constraints validated in one query (audits/constraints.py): the same verdicts and
messages as Django's one-query-per-constraint validation, for a fraction of the queries."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.test.utils import CaptureQueriesContext

from payments.models import Payment
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

BROKEN = [
    {"amount": 0},
    {"currency": "euro"},
    {"captured_amount": 2_000},
    {"refunded_amount": 500},
    {"card_last4": "42a2"},
    {"gateway": "paypal"},
    {"status": "lost"},
    {"amount": 0, "currency": "x", "card_last4": "1"},  # several at once: every message
]


def payment(**changes: object) -> Payment:
    fields = {"gateway": "sandbox", "amount": 1_000, "currency": "EUR", "card_last4": "4242"}
    return Payment(merchant=MerchantFactory(), **{**fields, **changes})


def django_verdict(instance: models.Model) -> dict[str, list[str]]:
    try:
        models.Model.validate_constraints(instance)  # Django's own, one query per constraint
    except ValidationError as error:
        return error.message_dict
    return {}


def our_verdict(instance: models.Model) -> dict[str, list[str]]:
    try:
        instance.validate_constraints()
    except ValidationError as error:
        return error.message_dict
    return {}


@pytest.mark.parametrize("changes", BROKEN, ids=lambda c: ",".join(c))
def test_a_broken_rule_gets_the_same_error_as_djangos_own_validation(changes) -> None:
    broken = payment(**changes)
    expected = django_verdict(broken)
    assert expected, "the example must break a constraint"
    assert our_verdict(broken) == expected
    assert not Payment.objects.exists()


def test_a_valid_row_passes_and_every_check_constraint_is_asked_in_one_query() -> None:
    valid = payment()
    checks = sum(isinstance(c, models.CheckConstraint) for c in Payment._meta.constraints)
    assert checks >= 5
    with CaptureQueriesContext(connection) as ours:
        assert our_verdict(valid) == {}
    with CaptureQueriesContext(connection) as djangos:
        assert django_verdict(valid) == {}
    asked = [q for q in ours.captured_queries if "_check_" in q["sql"]]
    assert len(asked) == 1
    assert len(ours.captured_queries) < len(djangos.captured_queries) - checks


def test_an_excluded_field_skips_the_constraints_that_name_it_as_django_does() -> None:
    broken = payment(amount=0)
    assert our_verdict(broken)
    try:
        broken.validate_constraints(exclude={"amount"})
    except ValidationError as error:
        pytest.fail(f"a constraint on an excluded field was checked: {error}")
