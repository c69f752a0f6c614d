"""Requests whose user is signed in, for annotating views (django-stubs' recommended pattern).

For the type checker only: at run time these are Django's HttpRequest and DRF's Request. Use
them where a signed-in user is guaranteed: behind login_required, in the admin (staff only),
and in API views whose permission (HasScope) refuses anonymous requests.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework.request import Request


class AuthenticatedHttpRequest(HttpRequest):
    user: User


class AuthenticatedRequest(Request):
    user: User
