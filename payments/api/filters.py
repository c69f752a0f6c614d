from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from ..models import Chargeback, Payment

# Larger numbers than a bigint column holds are invalid input, not a database error.
BIGINT_MAX = 2**63 - 1


class PaymentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Payment.Status.choices)
    gateway = django_filters.ChoiceFilter(choices=Payment._meta.get_field("gateway").choices)
    currency = django_filters.CharFilter(method="filter_currency", max_length=3)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    amount_min = django_filters.NumberFilter(
        field_name="amount", lookup_expr="gte", min_value=0, max_value=BIGINT_MAX
    )
    amount_max = django_filters.NumberFilter(
        field_name="amount", lookup_expr="lte", min_value=0, max_value=BIGINT_MAX
    )

    class Meta:
        model = Payment
        fields: list[str] = []

    def filter_currency(
        self, queryset: QuerySet[Payment], name: str, value: str
    ) -> QuerySet[Payment]:
        return queryset.filter(currency=value.upper())


class ChargebackFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Chargeback.Status.choices)
    payment = django_filters.NumberFilter(
        field_name="payment_id", min_value=1, max_value=BIGINT_MAX
    )

    class Meta:
        model = Chargeback
        fields: list[str] = []
