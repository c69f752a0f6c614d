"""The domain error base. Each error carries the HTTP status the API answers with and the
machine-readable `error_type` it reports, so the API's handler needs no table of classes."""

from __future__ import annotations

import re
from typing import Any, ClassVar


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class DomainError(Exception):
    """An action that the rules of the domain refuse. Carries a message fit for a person."""

    http_status: ClassVar[int] = 422
    error_type: ClassVar[str] = "domain_error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The class name is the machine code unless the class names its own:
        # RefundNotAllowed -> "refund_not_allowed".
        if "error_type" not in cls.__dict__:
            cls.error_type = _snake(cls.__name__)


class InvalidTransition(DomainError):
    http_status = 409

    def __init__(self, *, model: str, pk: object, current: str, target: str) -> None:
        self.current, self.target = current, target
        super().__init__(f"{model} {pk}: cannot move from '{current}' to '{target}'.")
