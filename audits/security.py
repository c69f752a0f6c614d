"""The security trail: privilege changes and sign-ins, written to payment_audits like money.

Rows have action types `security.*` and object type `auth.user` (who was changed, signed in or
failed to) or `auth.group` (a role's permissions), so they share the hash chains, the
append-only triggers, verify_audit_chain and the /audits/ screens with the payment trail.
Django's django_admin_log is not the record: anyone with a database login can delete from it.

Receivers record, never decide. They never store a secret: a password is "set", "unusable" or
"changed", never its hash; a device is its id and name, never its key; a token its prefix,
never its digest. Each row is appended in the change's transaction (it commits or rolls back
with the change), or in a transaction of its own when there is none, as for a sign-in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.utils import timezone

from . import chain, context
from .models import PaymentAudit

USER_FIELDS = (
    "username",
    "first_name",
    "last_name",
    "email",
    "is_staff",
    "is_superuser",
    "is_active",
)
DEVICE_FIELDS = ("name", "confirmed", "user_id")
_BEFORE = "_security_before"
_CLEARED = "_security_cleared"


def record(
    *,
    action: str,
    object_type: str,
    object_id: Any,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    actor_id: int | None = None,
) -> PaymentAudit:
    """Append one `security.<action>` row with the current context's IP and device, and its
    actor unless one is given."""
    ctx = context.current()
    if actor_id is None:
        actor_id = ctx.resolve_actor()[0]
    # No savepoint: inside a change's transaction the row commits or rolls back with it.
    with transaction.atomic(savepoint=False):
        return chain.append(
            PaymentAudit(
                user_id=actor_id,
                action_type=f"security.{action}"[:50],
                object_type=object_type,
                object_id=str(object_id)[:64],
                before_state=before,
                after_state=None if after is None else {**after, "source": ctx.source},
                ip_address=ctx.ip_address,
                device_id=ctx.device_id,
                request_id=ctx.request_id,
                created_at=timezone.now(),
            )
        )


def _password_state(encoded: str | None) -> str:
    from django.contrib.auth.hashers import is_password_usable

    return "set" if encoded and is_password_usable(encoded) else "unusable"


def _user_state(values: dict[str, Any]) -> dict[str, Any]:
    state = {field: values[field] for field in USER_FIELDS}
    state["password"] = _password_state(values["password"])
    return state


def _tracked(update_fields: Any, fields: Iterable[str]) -> bool:
    """A save limited to untracked columns (last_login, a device's counters, a token's last
    use) changes nothing here: skip reading the row."""
    return update_fields is None or bool(set(update_fields) & set(fields))


# --- users -------------------------------------------------------------------------------------


def _is_system_bootstrap(user: Any, changed: set[str]) -> bool:
    # migrate creates the system user and makes it unusable; recording that would need the
    # system user as the actor before it exists. Any other change to it is recorded.
    return user.username == context.SYSTEM_USERNAME and changed <= {"password", "is_active"}


def user_before_save(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    before = None
    if (
        not instance._state.adding
        and instance.pk is not None
        and _tracked(update_fields, (*USER_FIELDS, "password"))
    ):
        before = (
            sender._base_manager.filter(pk=instance.pk).values(*USER_FIELDS, "password").first()
        )
    instance.__dict__[_BEFORE] = before


def user_after_save(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    before = instance.__dict__.pop(_BEFORE, None)
    values = {field: getattr(instance, field) for field in (*USER_FIELDS, "password")}
    after = _user_state(values)
    if created or before is None:
        if created and not _is_system_bootstrap(instance, set(USER_FIELDS)):
            record(
                action="user.create", object_type="auth.user", object_id=instance.pk, after=after
            )
        return
    changed = {f for f in USER_FIELDS if before[f] != values[f]}
    if before["password"] != values["password"]:
        changed.add("password")
        # "changed" is a marker for the trail, never the password itself.
        after["password"] = "changed"  # noqa: S105  # nosec B105
    if not changed or _is_system_bootstrap(instance, changed):
        return
    record(
        action="user.update",
        object_type="auth.user",
        object_id=instance.pk,
        before=_user_state(before),
        after={**after, "changed": sorted(changed)},
    )


def user_after_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    values = {field: getattr(instance, field) for field in (*USER_FIELDS, "password")}
    record(
        action="user.delete",
        object_type="auth.user",
        object_id=instance.pk,
        before=_user_state(values),
    )


def group_after_save(sender: Any, instance: Group, created: bool, **kwargs: Any) -> None:
    if created:
        record(
            action="group.create",
            object_type="auth.group",
            object_id=instance.pk,
            after={"name": instance.name},
        )


def group_after_delete(sender: Any, instance: Group, **kwargs: Any) -> None:
    record(
        action="group.delete",
        object_type="auth.group",
        object_id=instance.pk,
        before={"name": instance.name},
    )


# --- memberships and permissions (many-to-many) -----------------------------------------------


def _permission_names(pks: Iterable[int]) -> list[str]:
    return sorted(
        f"{app}.{codename}"
        for app, codename in Permission.objects.filter(pk__in=list(pks)).values_list(
            "content_type__app_label", "codename"
        )
    )


def _group_names(pks: Iterable[int]) -> list[str]:
    return sorted(Group.objects.filter(pk__in=list(pks)).values_list("name", flat=True))


def _m2m(
    *,
    instance: Any,
    action: str,
    reverse: bool,
    pk_set: set[int] | None,
    owner_type: str,
    what: str,
    owner_model: type[models.Model],
    names: Any,
) -> None:
    """One row per owner (user or group) whose memberships or permissions changed. The forward
    side (user.groups.add) names the owner; the reverse side (group.user_set.add) the items."""
    if action == "pre_clear":
        # clear() gives no pk_set: read what is about to go, once.
        if reverse:
            related = owner_model._base_manager.filter(**{f"{what}": instance})
        else:
            related = getattr(instance, what).all()
        instance.__dict__[_CLEARED] = set(related.values_list("pk", flat=True))
        return
    if action == "post_clear":
        pk_set = instance.__dict__.pop(_CLEARED, set())
        action = "post_remove"
    if action not in ("post_add", "post_remove") or not pk_set:
        return
    verb, done = ("add", "added") if action == "post_add" else ("remove", "removed")
    if reverse:
        item_name = names([instance.pk])
        for owner_pk in sorted(pk_set):
            record(
                action=f"{owner_type.split('.')[1]}.{what}_{verb}",
                object_type=owner_type,
                object_id=owner_pk,
                after={f"{what}_{done}": item_name},
            )
        return
    record(
        action=f"{owner_type.split('.')[1]}.{what}_{verb}",
        object_type=owner_type,
        object_id=instance.pk,
        after={f"{what}_{done}": names(pk_set)},
    )


def _m2m_receiver(
    *,
    owner_type: str,
    what: str,
    owner_model: Callable[[], type[models.Model]],
    names: Callable[[Iterable[int]], list[str]],
) -> Callable[..., None]:
    """An m2m_changed receiver for one relation (a user's groups, a group's permissions...)."""

    def receiver(
        sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kw: Any
    ) -> None:
        _m2m(
            instance=instance,
            action=action,
            reverse=reverse,
            pk_set=pk_set,
            owner_type=owner_type,
            what=what,
            owner_model=owner_model(),
            names=names,
        )

    return receiver


user_groups_changed = _m2m_receiver(
    owner_type="auth.user", what="groups", owner_model=get_user_model, names=_group_names
)
user_permissions_changed = _m2m_receiver(
    owner_type="auth.user",
    what="user_permissions",
    owner_model=get_user_model,
    names=_permission_names,
)
group_permissions_changed = _m2m_receiver(
    owner_type="auth.group",
    what="permissions",
    owner_model=lambda: Group,
    names=_permission_names,
)


# --- second-factor devices ----------------------------------------------------------------------


def _device_state(device: Any) -> dict[str, Any]:
    return {
        "device": device._meta.label_lower,
        "device_pk": device.pk,
        "name": device.name,
        "confirmed": device.confirmed,
    }


def device_before_save(
    sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any
) -> None:
    before = None
    if (
        not instance._state.adding
        and instance.pk is not None
        and _tracked(update_fields, DEVICE_FIELDS)
    ):
        before = sender._base_manager.filter(pk=instance.pk).values(*DEVICE_FIELDS).first()
    instance.__dict__[_BEFORE] = before


def device_after_save(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    before = instance.__dict__.pop(_BEFORE, None)
    if created:
        record(
            action="device.add",
            object_type="auth.user",
            object_id=instance.user_id,
            after=_device_state(instance),
        )
        return
    if before is None or all(before[f] == getattr(instance, f) for f in DEVICE_FIELDS):
        return  # a verification moved the counters: not a change of who holds the device
    record(
        action="device.update",
        object_type="auth.user",
        object_id=instance.user_id,
        before={**{f: before[f] for f in DEVICE_FIELDS}, "device_pk": instance.pk},
        after=_device_state(instance),
    )


def device_after_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    record(
        action="device.remove",
        object_type="auth.user",
        object_id=instance.user_id,
        before=_device_state(instance),
    )


# --- credentials of other apps (API tokens) ------------------------------------------------------


_credentials: dict[type[models.Model], tuple[str, str, tuple[str, ...]]] = {}


def register_credential(
    model: type[models.Model], *, owner_field: str, fields: list[str], revoked_field: str
) -> None:
    """Record creating, changing and revoking a credential on its owner's security timeline.
    `fields` are what may be shown (never the secret or its hash)."""
    shown = tuple(dict.fromkeys([*fields, revoked_field]))
    # owner_field names the credential's own foreign key, never a reverse relation.
    owner = cast("models.Field[Any, Any]", model._meta.get_field(owner_field))
    _credentials[model] = (owner.attname, revoked_field, shown)
    uid = f"audits.security.{model._meta.label}"
    pre_save.connect(_credential_before_save, sender=model, dispatch_uid=uid)
    post_save.connect(_credential_after_save, sender=model, dispatch_uid=uid)


def _credential_state(instance: Any, shown: tuple[str, ...]) -> dict[str, Any]:
    from .snapshot import _json_value

    state = {field: _json_value(getattr(instance, field)) for field in shown}
    return {"credential": instance._meta.label_lower, "credential_pk": instance.pk, **state}


def _credential_before_save(
    sender: Any, instance: Any, update_fields: Any = None, **kw: Any
) -> None:
    _, _, shown = _credentials[sender]
    before = None
    if not instance._state.adding and instance.pk is not None and _tracked(update_fields, shown):
        before = sender._base_manager.filter(pk=instance.pk).first()
    instance.__dict__[_BEFORE] = before


def _credential_after_save(sender: Any, instance: Any, created: bool, **kw: Any) -> None:
    owner_attname, revoked_field, shown = _credentials[sender]
    before = instance.__dict__.pop(_BEFORE, None)
    owner_id = getattr(instance, owner_attname)
    name = sender._meta.model_name
    after = _credential_state(instance, shown)
    if created:
        record(action=f"{name}.create", object_type="auth.user", object_id=owner_id, after=after)
        return
    if before is None:
        return
    previous = _credential_state(before, shown)
    if previous == after:
        return
    revoked = (
        getattr(before, revoked_field) is None and getattr(instance, revoked_field) is not None
    )
    record(
        action=f"{name}.{'revoke' if revoked else 'update'}",
        object_type="auth.user",
        object_id=owner_id,
        before=previous,
        after=after,
    )


# --- signing in and out ---------------------------------------------------------------------------


def signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    backend = getattr(user, "backend", "") or ""
    record(
        action="signin",
        object_type="auth.user",
        object_id=user.pk,
        after={"username": user.get_username(), "backend": backend},
        actor_id=user.pk,
    )


def signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None or not getattr(user, "pk", None):
        return  # signing out an anonymous session ends nothing
    record(
        action="signout",
        object_type="auth.user",
        object_id=user.pk,
        after={"username": user.get_username()},
        actor_id=user.pk,
    )


def _failed(username: str, reason: str) -> None:
    # Nobody is signed in: the system user is the actor, the account tried is the object.
    # Whatever was typed: PostgreSQL's JSONB takes neither NUL nor a lone surrogate.
    username = (username or "")[:150].replace("\x00", "").encode("utf-8", "replace").decode()
    user_pk = (
        get_user_model()
        ._base_manager.filter(username=username)
        .values_list("pk", flat=True)
        .first()
    )
    record(
        action="signin_failed",
        object_type="auth.user",
        object_id=user_pk if user_pk is not None else "unknown",
        after={"username": username, "reason": reason},
        actor_id=context.system_user_id(),
    )


def signin_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kw: Any) -> None:
    # Django has already replaced the password in `credentials`; only the username is read,
    # and which factor failed when the sign-in form says (config.signin.SignInForm).
    factor = credentials.get("factor")
    _failed(
        str(credentials.get("username", "")),
        factor if factor in ("password", "second factor") else "password",
    )


def second_factor_failed(sender: Any, user: Any, **kwargs: Any) -> None:
    _failed(user.get_username() if user is not None else "", "second factor")


def connect() -> None:
    """Called from AuditsConfig.ready()."""
    from django_otp.forms import otp_verification_failed

    user_model = get_user_model()
    pre_save.connect(user_before_save, sender=user_model, dispatch_uid="audits.security.user")
    post_save.connect(user_after_save, sender=user_model, dispatch_uid="audits.security.user")
    post_delete.connect(user_after_delete, sender=user_model, dispatch_uid="audits.security.user")
    post_save.connect(group_after_save, sender=Group, dispatch_uid="audits.security.group")
    post_delete.connect(group_after_delete, sender=Group, dispatch_uid="audits.security.group")
    m2m_changed.connect(
        user_groups_changed, sender=user_model.groups.through, dispatch_uid="audits.security.ug"
    )
    m2m_changed.connect(
        user_permissions_changed,
        sender=user_model.user_permissions.through,
        dispatch_uid="audits.security.up",
    )
    m2m_changed.connect(
        group_permissions_changed,
        sender=Group.permissions.through,
        dispatch_uid="audits.security.gp",
    )
    from django_otp.plugins.otp_totp.models import TOTPDevice

    pre_save.connect(device_before_save, sender=TOTPDevice, dispatch_uid="audits.security.totp")
    post_save.connect(device_after_save, sender=TOTPDevice, dispatch_uid="audits.security.totp")
    post_delete.connect(device_after_delete, sender=TOTPDevice, dispatch_uid="audits.security.totp")
    user_logged_in.connect(signed_in, dispatch_uid="audits.security.signin")
    user_logged_out.connect(signed_out, dispatch_uid="audits.security.signout")
    user_login_failed.connect(signin_failed, dispatch_uid="audits.security.signin_failed")
    otp_verification_failed.connect(second_factor_failed, dispatch_uid="audits.security.otp_failed")
