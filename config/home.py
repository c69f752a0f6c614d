from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send each person to the screen of their role."""
    user = request.user
    for permission, target in (
        ("kyc.change_kyccase", "kyc:queue"),
        ("payments.change_payment", "payments:payment-list"),
        ("audits.view_paymentaudit", "audits:search"),
        ("kyc.view_kyccase", "kyc:queue"),
    ):
        if user.has_perm(permission):
            return redirect(target)
    return redirect("admin:index")
