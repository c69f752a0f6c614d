from __future__ import annotations

from django.db.models import QuerySet

from .models import Merchant


def merchant_list() -> QuerySet[Merchant]:
    return Merchant.objects.order_by("pk")
