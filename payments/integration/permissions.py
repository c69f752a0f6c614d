"""Scopes: what a token may do. A view names the scope each method needs.

A token needs the scope; when its owner is staff or has a role, the owner also needs
the matching Django permission at the moment of the request, merchant-bound or not: a token
does no more than its owner's role allows, and a role taken away takes the token's power with
it (an Auditor's token cannot refund). A merchant-bound token of a non-staff integration
account is held to its merchant and scopes. A person signed in with a session needs the
permission.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import permissions
from rest_framework.exceptions import ValidationError

from ..models import ApiToken, Merchant

SCOPE_PERMISSIONS = {
    "merchants:read": "payments.view_merchant",
    "merchants:write": "payments.change_merchant",
    "merchants:contact": "payments.view_merchant_contact",
    "payments:read": "payments.view_payment",
    "payments:write": "payments.change_payment",
    "kyc:read": "kyc.view_kyccase",
    "kyc:write": "kyc.change_kyccase",
    "audit:read": "audits.view_paymentaudit",
}


def token_of(request: Any) -> ApiToken | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiToken) else None


def merchant_scope(request: Any) -> int | None:
    """The merchant a request is bound to (its token's), or None for staff."""
    token = token_of(request)
    return token.merchant_id if token is not None else None


def merchant_for_request(request: Any, asked: int | None) -> Merchant:
    """The merchant a create acts for: a merchant token's own, or the one a staff token names.
    Another merchant's id reads as unknown, as if it did not exist. A 400 on `merchant` else."""
    bound = merchant_scope(request)
    if bound is not None and asked not in (None, bound):
        raise ValidationError({"merchant": ["Unknown merchant."]})
    merchant_id = bound if bound is not None else asked
    if merchant_id is None:
        raise ValidationError({"merchant": ["This field is required with a staff token."]})
    merchant = Merchant.objects.filter(pk=merchant_id).first()
    if merchant is None:
        raise ValidationError({"merchant": ["Unknown merchant."]})
    return merchant


def may_see_contact(request: Any) -> bool:
    """Whether merchant contact persons' personal data goes into a response: a token needs the
    scope merchants:contact (and its owner the permission, unless it is a merchant's own
    integration account); a person signed in needs the permission."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    token = token_of(request)
    if token is not None:
        if "merchants:contact" not in token.scopes:
            return False
        if token.merchant_id is not None and not (
            user.is_staff or getattr(token, "owner_has_role", True)
        ):
            return True
    return bool(user.has_perm(SCOPE_PERMISSIONS["merchants:contact"]))


class HasScope(permissions.BasePermission):
    message = "This token lacks the scope this endpoint needs."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        method = "GET" if request.method == "HEAD" else request.method
        scope = view.required_scopes.get(method)
        if scope is None:
            return True  # OPTIONS, or a method the view lacks: DRF answers 405
        token = token_of(request)
        if token is not None:
            if scope not in token.scopes:
                self.message = f"This token lacks the scope '{scope}'."
                return False
            if token.merchant_id is not None:
                if getattr(view, "staff_only", False):
                    self.message = "Only a staff token (bound to no merchant) may use this."
                    return False
                if not (user.is_staff or getattr(token, "owner_has_role", True)):
                    # An integration account: no role, signs in nowhere; the token's merchant
                    # and scopes are all it may act on.
                    return True
        if not user.has_perm(SCOPE_PERMISSIONS[scope]):
            self.message = f"The token's owner lacks the permission for '{scope}'."
            return False
        # Some writes need more than the scope's permission (a refund: payments.add_refund).
        extra = getattr(view, "required_permissions", {}).get(method)
        if extra and not user.has_perm(extra):
            self.message = f"The token's owner lacks the permission '{extra}'."
            return False
        return True


class SchemaReader(permissions.BasePermission):
    """The OpenAPI schema and docs (/api/schema/, /api/docs/): open with DEBUG on; otherwise a
    signed-in staff member or any valid API token, as the schema maps every endpoint."""

    message = "Sign in as staff, or send an API token, to read the API schema."

    def has_permission(self, request: Any, view: Any) -> bool:
        if settings.DEBUG:
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return user.is_staff or token_of(request) is not None
