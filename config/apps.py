from __future__ import annotations

from django.contrib.admin.apps import AdminConfig
from django.contrib.auth.signals import user_logged_in


class BackofficeAdminConfig(AdminConfig):
    """The admin app, with our site (a second factor when STAFF_REQUIRE_OTP)."""

    default_site = "config.admin_site.BackofficeAdminSite"

    def ready(self) -> None:
        super().ready()
        from config.sessions import stamp_sign_in

        # Every sign-in (the console's form, the test client, any later view) starts the
        # session clocks that config.sessions.SessionLimitsMiddleware checks.
        user_logged_in.connect(stamp_sign_in, dispatch_uid="config.sessions.stamp_sign_in")
