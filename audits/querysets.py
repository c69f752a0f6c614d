from __future__ import annotations

from typing import Any

from django.db import models

from .constraints import OneQueryCheckConstraints


class AuditBypassRefused(Exception):
    """A bulk write that would change regulated rows without signals, and so without audit."""


class AuditedQuerySet(models.QuerySet):
    """QuerySet for audited models: bulk writes that skip save() signals are refused.

    `delete()` stays: Django sends pre/post_delete for each row when receivers are connected, so
    deletes are audited row by row. Change rows one by one through the services instead.
    """

    def _refuse(self, method: str) -> AuditBypassRefused:
        name = self.model.__name__
        return AuditBypassRefused(
            f"{name}.objects.{method}() would change {name} rows without writing the audit "
            f"trail; save each row through the service layer instead."
        )

    def update(self, **kwargs: Any) -> int:
        raise self._refuse("update")

    def bulk_create(self, *args: Any, **kwargs: Any) -> list[Any]:
        raise self._refuse("bulk_create")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise self._refuse("bulk_update")


class AuditedModel(OneQueryCheckConstraints):
    """Base of every audited model: its manager refuses bulk writes, and Django's internal
    paths use that manager too (base_manager_name), so they are refused there as well.

    Its check constraints are validated in one query (audits/constraints.py).
    A subclass that declares its own Meta extends this one: `class Meta(AuditedModel.Meta)`."""

    objects = AuditedQuerySet.as_manager()

    class Meta:
        abstract = True
        base_manager_name = "objects"
