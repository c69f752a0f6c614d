from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate, pre_delete


class AuditsConfig(AppConfig):
    name = "audits"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_in

        from . import devices, security, tasks_context, users

        pre_delete.connect(
            users.refuse_deleting_user_with_history,
            sender=get_user_model(),
            dispatch_uid="audits.refuse_user_delete",
        )
        post_migrate.connect(_after_migrate, dispatch_uid="audits.after_migrate")
        tasks_context.connect()
        security.connect()
        # After the sign-in row: a new device is the next row of the person's security trail.
        user_logged_in.connect(devices.staff_signed_in, dispatch_uid="audits.devices.signin")


def _after_migrate(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    # post_migrate is sent once per app; act once, after the last app's permissions exist.
    # It also runs after each test flush, which empties the tables these rows live in.
    if sender is not list(apps.get_app_configs())[-1]:
        return
    from django.contrib.auth.management import create_permissions
    from django.db import transaction

    from . import chain, context, roles

    # Our receiver may run before auth's for this last app: make its permissions exist first.
    create_permissions(sender, verbosity=0, using=using)
    with transaction.atomic(using=using):
        context.forget_system_user()
        context.ensure_system_user()
        chain.ensure_heads()
        roles.sync_roles(apps)
