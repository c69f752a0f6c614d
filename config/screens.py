"""What every staff screen's view says once, in its `@screen(...)`: its URL, who may open it,
and whether it only takes a form's POST; the heading a record's page shares; the screens'
form field for a code of letters."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from .permissions import permission_required

View = Callable[..., HttpResponseBase]


def screen(*perms: str, url: tuple[str, str], post: bool = False) -> Callable[[View], View]:
    """A screen for signed-in staff holding each of `perms`, served at `url` (its route below
    the app's prefix, and its name); `post=True` for a form's target.

    Checked in this order, as the three decorators were stacked: an anonymous visitor goes to
    the sign-in page, a GET on a form's target is a 405, then a missing permission a 403
    naming the first one missing."""

    def decorator(view: View) -> View:
        for perm in reversed(perms):
            view = permission_required(perm, raise_exception=True)(view)
        if post:
            view = require_POST(view)
        view = login_required(view)
        view.screen_url = url  # type: ignore[attr-defined]  # read by routes()
        return view

    return decorator


def routes(*modules: ModuleType) -> list[URLPattern]:
    """The URL patterns of the screens defined in `modules`, in the order they are defined:
    Django tries them in that order, so a catch-all route (`<slug:action>`) is defined after
    the routes it would otherwise take."""
    patterns = []
    for module in modules:
        for view in vars(module).values():
            url = getattr(view, "screen_url", None)
            if url is not None and view.__module__ == module.__name__:
                route, name = url
                patterns.append(path(route, view, name=name))
    return patterns


def record_page(title: str, status: str, *, back: tuple[str, str]) -> dict[str, str]:
    """The context `record_page.html` heads a record's page with: its title (the browser
    tab's too), its status as a badge, and a link back to its list (`back`: the list's URL
    name and label)."""
    url_name, label = back
    return {"title": title, "status": status, "back_url": reverse(url_name), "back_label": label}


_COUNT_WORDS = {2: "Two", 3: "Three"}


def letter_code_field(letters: int, example: str, **options: Any) -> forms.RegexField:
    """A code of `letters` letters (a country's, a currency's), in either case; `example` shows
    one in the error message."""
    return forms.RegexField(
        regex=rf"^[A-Za-z]{{{letters}}}$",
        max_length=letters,
        error_messages={"invalid": f"{_COUNT_WORDS[letters]} letters, e.g. {example}."},
        **options,
    )
