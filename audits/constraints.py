"""Check constraints validated in one query per save instead of one per constraint.

Django's full_clean() asks the database about each CheckConstraint separately (a query, and a
savepoint when a transaction is open). A payment has five, so a status change cost ten round
trips before its one UPDATE. This asks them all in one SELECT, with the same rule as Django's
Q.check(): a condition that is NULL (unknown) passes, as the database itself lets it pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

from django.core.exceptions import FieldError, ValidationError
from django.db import DatabaseError, connections, models, router, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, Value
from django.db.models.functions import Coalesce
from django.db.models.sql import Query
from django.db.models.sql.constants import SINGLE

log = logging.getLogger(__name__)


# Set where a broken check is left to the database's own constraint (see checks_left_to_database).
_left_to_database: ContextVar[bool] = ContextVar("checks_left_to_database", default=False)


@contextmanager
def checks_left_to_database() -> Iterator[None]:
    """Inside the block full_clean() does not ask the database about check constraints: the
    write itself is refused by the same constraints. Only for a caller that runs again, with
    the checks, whatever raised inside (the webhook batch runs a failing event again alone),
    so that a bad value still ends as the ValidationError naming the field."""
    token = _left_to_database.set(True)
    try:
        yield
    finally:
        _left_to_database.reset(token)


def failing_checks(
    instance: models.Model,
    model_class: type[models.Model],
    checks: list[models.CheckConstraint],
    *,
    exclude: Any,
    using: str,
) -> list[models.CheckConstraint]:
    """The constraints among `checks` that the instance's values break."""
    if not checks or _left_to_database.get():
        return []
    meta = model_class._meta
    against = instance._get_field_expression_map(meta=meta, exclude=exclude)  # type: ignore[attr-defined]
    query = Query(None)
    for name, value in against.items():
        query.add_annotation(
            value if hasattr(value, "resolve_expression") else Value(value), name, select=False
        )
    asked = []
    for index, check in enumerate(checks):
        condition = Coalesce(
            ExpressionWrapper(Q(check.condition), output_field=BooleanField()),
            Value(True),
            output_field=BooleanField(),
        )
        try:
            query.add_annotation(condition, f"_check_{index}")
        except FieldError:  # the condition names an excluded field: Django skips it too
            continue
        asked.append(check)
    if not asked:
        return []
    connection = connections[using]
    savepoint = transaction.atomic(using=using) if connection.in_atomic_block else nullcontext()
    try:
        with savepoint:
            row = query.get_compiler(using=using).execute_sql(SINGLE)
    except DatabaseError as error:
        log.warning("Could not validate the check constraints of %s: %s", meta.label, error)
        return []
    return [check for check, passed in zip(asked, row, strict=True) if not passed]


class OneQueryCheckConstraints(models.Model):
    class Meta:
        abstract = True

    def validate_constraints(self, exclude: Any = None) -> None:
        """Django's loop (unique constraints one by one, their errors keyed alike), with the
        check constraints of each model class asked together."""
        using = router.db_for_write(type(self), instance=self)
        errors: dict[str, Any] = {}
        for model_class, constraints in self.get_constraints():
            checks = [c for c in constraints if isinstance(c, models.CheckConstraint)]
            for constraint in constraints:
                if isinstance(constraint, models.CheckConstraint):
                    continue
                try:
                    constraint.validate(model_class, self, exclude=exclude, using=using)
                except ValidationError as error:
                    fields: tuple[str, ...] = tuple(getattr(constraint, "fields", ()))
                    if getattr(error, "code", None) == "unique" and len(fields) == 1:
                        errors.setdefault(fields[0], []).append(error)
                    else:
                        errors = error.update_error_dict(errors)
            for check in failing_checks(self, model_class, checks, exclude=exclude, using=using):
                errors = ValidationError(
                    check.get_violation_error_message(), code=check.violation_error_code
                ).update_error_dict(errors)
        if errors:
            raise ValidationError(errors)
