"""Give a staff user a TOTP device (second factor) and print the otpauth:// address to add to an
authenticator app. The address holds the secret: show it only to that person."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits.commands import AuditedCommand


class Command(AuditedCommand):
    help = __doc__

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="the device's name")

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user '{username}'.")
        if not user.is_staff:
            raise CommandError(f"'{username}' is not staff: the second factor is for staff.")
        with transaction.atomic():
            device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
        self.stdout.write(
            f"TOTP device '{name}' created for {username}. Add this to their authenticator app:"
        )
        self.stdout.write(device.config_url)
