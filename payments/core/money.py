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


class AmountError(ValueError):
    pass


def parse_major(value: str, currency: str) -> int:
    """'12.34' EUR -> 1234. Refuses more decimals than the currency has, and non-positive."""
    from decimal import Decimal, InvalidOperation

    places = exponent(currency)
    try:
        amount = Decimal(value.strip().replace(",", ""))
    except InvalidOperation as exc:
        raise AmountError(f"'{value}' is not an amount.") from exc
    if not amount.is_finite() or amount <= 0:
        raise AmountError("The amount must be more than zero.")
    minor = amount * (10**places)
    if minor != minor.to_integral_value():
        raise AmountError(f"{currency} amounts have at most {places} decimal places.")
    return int(minor)


def format_major(amount: int, currency: str) -> str:
    """1234 EUR -> '12.34' (no grouping, for CSV and form fields)."""
    places = exponent(currency)
    if places == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    units, minor = divmod(abs(amount), 10**places)
    return f"{sign}{units}.{minor:0{places}d}"
