"""Personal data shown masked to people whose role does not need it (issue 13, point 4): enough
to tell two contacts apart and to recognise one, never enough to contact or identify them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MASK = "•••"


def mask_email(value: str) -> str:
    """finance@acme.example -> f•••@acme.example"""
    if not value:
        return ""
    local, at, domain = value.partition("@")
    return f"{local[:1]}{MASK}{at}{domain}" if at else mask_name(value)


def mask_phone(value: str) -> str:
    """+44 20 7946 0123 -> ••• 23: the last two digits only."""
    digits = [c for c in value if c.isdigit()]
    return f"{MASK} {''.join(digits[-2:])}" if digits else ""


def mask_name(value: str) -> str:
    """Acme Finance -> A••• F•••"""
    return " ".join(f"{word[:1]}{MASK}" for word in value.split())


def mask_identifier(value: str) -> str:
    """GB123456789 -> •••789: the last three characters, to tell two apart."""
    value = value.strip()
    return f"{MASK}{value[-3:]}" if value else ""


def mask_date(value: object) -> str:
    """A date of birth: the year only. 1978-04-02 -> 1978-••-••"""
    text = str(value or "")
    return f"{text[:4]}-••-••" if text else ""


MASKS: dict[str, Callable[[Any], str]] = {
    "contact_email": mask_email,
    "contact_phone": mask_phone,
    "contact_name": mask_name,
    "tax_id": mask_identifier,
    "registration_number": mask_identifier,
    "date_of_birth": mask_date,
    "residential_address": mask_name,
}


def masked(field: str, value: object) -> str:
    """`value` of `field` masked; a field not named above is masked like a name."""
    return MASKS.get(field, mask_name)(value or "")
