from django import template

from ..core.money import format_minor

register = template.Library()


@register.filter(name="money")
def money(amount: int | None, currency: str) -> str:
    return "—" if amount is None else format_minor(int(amount), currency)
