from django.db import migrations

from audits import triggers


def install(apps, schema_editor):
    triggers.execute(
        schema_editor.connection,
        triggers.install_sql(schema_editor.connection.vendor, triggers.TRAIL_TABLES),
    )


def uninstall(apps, schema_editor):
    triggers.execute(
        schema_editor.connection,
        triggers.uninstall_sql(schema_editor.connection.vendor, triggers.TRAIL_TABLES),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audits", "0001_initial"),
        ("auditlog", "0017_add_actor_email"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
