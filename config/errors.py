"""Error pages in the app's layout (with its navigation), JSON under /api/.

A 403 shows the PermissionDenied message when it names what is missing (config.permissions does);
a bare PermissionDenied gets a general sentence.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.views.defaults import permission_denied

from payments.integration import errors as api_errors

log = logging.getLogger(__name__)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return permission_denied(request, exception)  # type: ignore[arg-type]
    reason = str(exception) if exception is not None and str(exception) else ""
    return render(request, "403.html", {"reason": reason}, status=403)


def handler404(request: HttpRequest, exception: Exception | None = None) -> Any:
    if request.path.startswith("/api/"):
        return api_errors.handler404(request, exception)  # type: ignore[arg-type]
    return render(request, "404.html", status=404)


def handler500(request: HttpRequest) -> Any:
    if request.path.startswith("/api/"):
        return api_errors.handler500(request)
    try:
        # With the request, the page has the person's navigation and sign-out button.
        return render(request, "500.html", status=500)
    except Exception:  # the failure may be the database itself: a page without the person
        log.exception("500 page with the request's context failed; plain page instead")
        return HttpResponseServerError(
            "<h1>Something went wrong (500)</h1><p>The error was logged.</p>",
            content_type="text/html",
        )
