"""Status machines: every status-bearing model declares its allowed transitions in one place.

Services call `transition_to`, which raises a domain error for a move that is not allowed.
`save()` checks the same table against the row as stored, so no path (console, shell, a
forgotten service) can move a status the machine does not allow. The stored row is read once
and shared with the audit receiver, which records the change and decides nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.db import models

from audits.receivers import forget_stored_before, stored_before

from .errors import InvalidTransition

if TYPE_CHECKING:
    _ModelBase = models.Model  # the mixin is only ever mixed into models
else:
    _ModelBase = object


class StatusMachineMixin(_ModelBase):
    STATUS_TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {}
    status: str

    @classmethod
    def allowed_targets(cls, current: str) -> frozenset[str]:
        return cls.STATUS_TRANSITIONS.get(current, frozenset())

    def check_transition(self, *, current: str, target: str) -> None:
        if current != target and target not in self.allowed_targets(current):
            raise InvalidTransition(
                model=type(self).__name__,
                pk=getattr(self, "pk", None),
                current=current,
                target=target,
            )

    def transition_to(self, target: str) -> None:
        """An explicit move: staying in the same state is refused too (a second submit, a
        second approval), unlike a save that leaves the status alone."""
        if self.status == target:
            raise InvalidTransition(
                model=type(self).__name__,
                pk=getattr(self, "pk", None),
                current=self.status,
                target=target,
            )
        self.check_transition(current=self.status, target=target)
        self.status = target

    def save(self, *args: Any, **kwargs: Any) -> None:
        try:
            update_fields = kwargs.get("update_fields")
            if update_fields is None or "status" in update_fields:
                stored = stored_before(self)
                if stored is not None:
                    self.check_transition(
                        current=cast(StatusMachineMixin, stored).status, target=self.status
                    )
            super().save(*args, **kwargs)
        except BaseException:
            forget_stored_before(self)  # the next save reads the stored row afresh
            raise
