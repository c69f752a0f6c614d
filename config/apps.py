from django.contrib.admin.apps import AdminConfig


class BackofficeAdminConfig(AdminConfig):
    """The admin app, with our site (a second factor when STAFF_REQUIRE_OTP)."""

    default_site = "config.admin_site.BackofficeAdminSite"
