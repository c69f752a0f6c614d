"""Who is acting, from where and on which device: the single source for both audit trails.

The request middleware binds a context per request; Celery tasks, webhooks and management
commands bind their own. With nothing bound, work is attributed to the built-in system user from
the loopback address. The user is read from the request only when an audit row is written, so a
user that DRF authenticates inside the view (after middleware ran) is still the actor.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest

SYSTEM_USERNAME = "system"
LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class AuditContext:
    source: str = "system"  # web, api, webhook, task, command, system
    detail: str = ""  # e.g. the task or command name
    ip_address: str = LOOPBACK
    device_id: str | None = None
    request_id: str = ""
    request: HttpRequest | None = None
    actor: User | None = None  # an explicit actor wins over the request's user
    token_id: int | None = None  # the API token the request was authenticated with, if any

    def resolve_actor(self) -> tuple[int, User | None]:
        """The acting user's id, and the user object when we hold one."""
        if self.actor is not None:
            return self.actor.pk, self.actor
        if self.request is not None:
            user = getattr(self.request, "user", None)
            if user is not None and user.is_authenticated:
                return user.pk, user
        return system_user_id(), None


_current: ContextVar[AuditContext | None] = ContextVar("audit_context", default=None)
_DEFAULT = AuditContext()


def current() -> AuditContext:
    return _current.get() or _DEFAULT


@contextlib.contextmanager
def bind(**changes: object) -> Iterator[AuditContext]:
    """Run a block with the current context changed, e.g. `bind(actor=user)` in a service or
    `bind(source="command", detail="seed_demo")` in a command."""
    context = dataclasses.replace(current(), **changes)  # type: ignore[arg-type]
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def acting(actor: User | None) -> contextlib.AbstractContextManager[AuditContext]:
    """The block runs as `actor` when one is given; otherwise the context stays as it is."""
    return bind(actor=actor) if actor is not None else bind()


def push(context: AuditContext) -> object:
    return _current.set(context)


def pop(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


_system_user_id: int | None = None


def system_user_id() -> int:
    global _system_user_id
    if _system_user_id is None:
        _system_user_id = ensure_system_user().pk
    return _system_user_id


def forget_system_user() -> None:
    """Called after migrate/flush: the row may have been recreated with another id."""
    global _system_user_id
    _system_user_id = None


def ensure_system_user() -> User:
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=SYSTEM_USERNAME,
        defaults={"is_active": False, "first_name": "System", "last_name": "(automated work)"},
    )
    if created or user.has_usable_password() or user.is_active:
        # Nobody signs in as the system: no usable password, inactive.
        user.set_unusable_password()
        user.is_active = False
        user.save(update_fields=["password", "is_active"])
    return user
