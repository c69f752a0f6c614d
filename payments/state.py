"""Status machines: every status-bearing model declares its allowed transitions in one place.

Services call `transition_to`, which raises a domain error for a move that is not allowed. The
audit receiver checks the same table against the row as stored before every save, so no path
(admin, shell, a forgotten service) can move a status the machine does not allow.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """An action that the rules of the domain refuse. Carries a message fit for a person."""


class InvalidTransition(DomainError):
    def __init__(self, *, model: str, pk: object, current: str, target: str) -> None:
        self.current, self.target = current, target
        super().__init__(f"{model} {pk}: cannot move from '{current}' to '{target}'.")


class StatusMachineMixin:
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
