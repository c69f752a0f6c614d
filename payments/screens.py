"""What the payments screens share (`payments/views.py`, `payments/fraud/views.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest

from .core.errors import DomainError


def form_data(form: forms.Form, refusal: str) -> dict[str, Any]:
    """The form's cleaned data; a DomainError saying what to fix when it is not valid."""
    if not form.is_valid():
        raise DomainError(refusal)
    return form.cleaned_data


@contextmanager
def refusals_shown(
    request: HttpRequest, *, worded: Callable[[DomainError], str] = str
) -> Iterator[None]:
    """Runs a screen's action: a refusal (a DomainError) becomes an error message, in
    `worded`'s words, on the page the screen goes back to."""
    try:
        yield
    except DomainError as exc:
        messages.error(request, worded(exc))
