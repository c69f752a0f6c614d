from django.db import migrations


def create_roles(apps, schema_editor):
    # Groups with the permissions that exist now; the post_migrate sync (audits.apps) adds the
    # permissions Django creates after the last migration, on a fresh database.
    from audits.roles import sync_roles

    sync_roles(apps)


def remove_roles(apps, schema_editor):
    from audits.roles import ROLE_PERMISSIONS

    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLE_PERMISSIONS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audits", "0002_append_only_triggers"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("payments", "0001_initial"),
        ("kyc", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
