"""{% load masking %}: `{{ merchant.contact_email|contact:"contact_email" }}` shows the value to a
person whose role may see contact persons' data (payments.view_merchant_contact) and a masked
one to everybody else. Needs `request` in the context (the request context processor)."""

from __future__ import annotations

from typing import Any

from django import template

from audits.masking import masked

register = template.Library()
PERMISSION = "payments.view_merchant_contact"


@register.simple_tag(takes_context=True)
def contact(context: Any, value: str, field: str) -> str:
    user = getattr(context.get("request"), "user", None)
    if user is not None and user.has_perm(PERMISSION):
        return value or ""
    return masked(field, value)
