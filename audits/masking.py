"""Personal data shown masked to people whose role does not need it (issue 13, point 4): enough
to tell two contacts apart and to recognise one, never enough to contact or identify them."""

from __future__ import annotations

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


MASKS = {"contact_email": mask_email, "contact_phone": mask_phone, "contact_name": mask_name}


def masked(field: str, value: str) -> str:
    return MASKS.get(field, mask_name)(value or "")
