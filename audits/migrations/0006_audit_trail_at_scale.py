"""The audit trail at scale (issue 14): signed checkpoints (append-only like the rows), and
indexes for every filter of the audit search: device, and "action contains" by trigram
(PostgreSQL only; SQLite has no trigram index and searches by scanning)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from audits import triggers


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    triggers.execute(
        schema_editor.connection, triggers.install_sql(vendor, triggers.CHECKPOINT_TABLES)
    )


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    triggers.execute(
        schema_editor.connection, triggers.uninstall_sql(vendor, triggers.CHECKPOINT_TABLES)
    )


def sqlite_triggers_again(apps, schema_editor):
    """SQLite alters a column by rebuilding the table, which drops the table's triggers."""
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        tables = ("payment_audits",)
        triggers.execute(
            schema_editor.connection,
            triggers.uninstall_sql(vendor, tables) + triggers.install_sql(vendor, tables),
        )


def trigram_install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    triggers.execute(
        schema_editor.connection,
        [
            "CREATE EXTENSION IF NOT EXISTS pg_trgm;",
            "CREATE INDEX payment_audit_action_trgm ON payment_audits "
            "USING gin (action_type gin_trgm_ops);",
        ],
    )


def trigram_uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        triggers.execute(
            schema_editor.connection, ["DROP INDEX IF EXISTS payment_audit_action_trgm;"]
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audits", "0005_subject_keys"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        help_text="when the heads were read; part of the signature"
                    ),
                ),
                ("heads", models.JSONField(help_text='{"chain": [seq, row_hash]} for every chain')),
                (
                    "rows",
                    models.PositiveBigIntegerField(
                        help_text="rows in the chains up to these heads"
                    ),
                ),
                (
                    "key_id",
                    models.CharField(
                        help_text="which public key verifies the signature", max_length=16
                    ),
                ),
                (
                    "signature",
                    models.CharField(help_text="Ed25519, URL-safe base64", max_length=100),
                ),
            ],
            options={
                "db_table": "payment_audit_checkpoints",
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["created_at"], name="payment_audit_checkpoint_idx")
                ],
            },
        ),
        migrations.RunPython(install, uninstall),
        # Backwards, the AlterField below runs after this and needs the triggers put back.
        migrations.RunPython(migrations.RunPython.noop, sqlite_triggers_again),
        migrations.AlterField(
            model_name="paymentaudit",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                help_text="the person, or the system user for automated work",
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(sqlite_triggers_again, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="paymentaudit",
            index=models.Index(fields=["device_id", "created_at"], name="payment_audit_device_idx"),
        ),
        migrations.RunPython(trigram_install, trigram_uninstall),
    ]
