"""Formatting of integer minor units, only at the edge (admin, templates, CSV)."""

from __future__ import annotations

# ISO 4217 minor-unit exponents that are not 2.
_EXPONENTS = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "HUF": 2,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def format_minor(amount: int, currency: str) -> str:
    places = exponent(currency)
    if places == 0:
        return f"{amount:,} {currency}"
    sign = "-" if amount < 0 else ""
    units, minor = divmod(abs(amount), 10**places)
    return f"{sign}{units:,}.{minor:0{places}d} {currency}"
