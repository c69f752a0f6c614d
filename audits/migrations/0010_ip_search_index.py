"""The search by IP reads (ip_address, created_at) newest first, 50 rows from each partition's
index, instead of merging every partition's rows by date and dropping other addresses'
(issue 14). On a partitioned trail each partition's copy is then named after the index, as
audits 0009 names them (payment_audit_ip_idx_y2026m12)."""

from django.conf import settings
from django.db import migrations, models

from audits import partitions


def _name_partition_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql" and partitions.is_partitioned(connection):
        schema_editor.execute(partitions.INDEX_NAMES_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audits", "0009_partitioned_trail"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(model_name="paymentaudit", name="payment_audit_ip_idx"),
        migrations.AddIndex(
            model_name="paymentaudit",
            index=models.Index(fields=["ip_address", "created_at"], name="payment_audit_ip_idx"),
        ),
        migrations.RunPython(_name_partition_indexes, migrations.RunPython.noop),
    ]
