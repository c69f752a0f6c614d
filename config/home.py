from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from kyc.overview import sections_for


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The overview is everybody's landing page: it shows the sections of their role. Staff
    with no role see none of it and go to the console."""
    if sections_for(request.user):
        return redirect("overview")
    return redirect("admin:index")
