"""How each audited model is recorded (the registry writes it, the receivers read it)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


@dataclass(frozen=True)
class AuditOptions:
    payment_audit: bool
    mask_fields: frozenset[str]


_options: dict[type[models.Model], AuditOptions] = {}


def set_options(model: type[models.Model], options: AuditOptions) -> None:
    _options[model] = options


def options_for(model: type[models.Model]) -> AuditOptions | None:
    return _options.get(model)
