"""payment_audits partitioned by month on PostgreSQL (issue 14, point 4; audits/partitions.py),
and the record of partitions detached to cold storage (append-only like the trail).

The table is rebuilt: a partitioned table like it, a partition for every month its rows span,
the current month and MONTHS_AHEAD after it, and DEFAULT; the rows are moved, the old table
dropped, then the keys, every index the model declares (partitioned indexes), the trigram index
and the append-only triggers (on the parent and each partition) are created again. Backwards,
the same into a plain table. The model's state does not change: PostgreSQL keys a partitioned
table by (id, created_at) and makes (chain, seq) unique with created_at; Django keeps `id`.
SQLite keeps a plain table.
"""

import datetime

from django.db import migrations, models

from audits import partitions, triggers

TABLE = partitions.TABLE
OLD = f"{TABLE}_rebuilt_from"


def _constraint_names(connection, table):
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)


def _user_fk_name(connection, table):
    for name, info in _constraint_names(connection, table).items():
        if info["foreign_key"] and info["columns"] == ["user_id"]:
            return name
    return f"{table}_user_id_fk"


def _rows_months(cursor):
    cursor.execute(f"SELECT min(created_at), max(created_at) FROM {OLD}")  # noqa: S608  # nosec B608
    low, high = cursor.fetchone()
    current = partitions.month_start(datetime.datetime.now(datetime.UTC).date())
    months = {partitions.month_add(current, n) for n in range(partitions.MONTHS_AHEAD + 1)}
    if low is not None:
        utc = datetime.UTC
        months |= set(
            partitions.months_between(low.astimezone(utc).date(), high.astimezone(utc).date())
        )
    return sorted(months)


def _rebuild(apps, schema_editor, *, partitioned):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or partitions.is_partitioned(connection) == partitioned:
        return
    model = apps.get_model("audits", "PaymentAudit")
    user_table = model._meta.get_field("user").remote_field.model._meta.db_table
    fk_name = _user_fk_name(connection, TABLE)
    statements = [
        f"ALTER TABLE {TABLE} RENAME TO {OLD};",
        f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        + (" PARTITION BY RANGE (created_at);" if partitioned else ";"),
    ]
    triggers.execute(connection, statements)
    with connection.cursor() as cursor:
        months = _rows_months(cursor) if partitioned else []
    statements = [
        sql for month in months for sql in partitions.create_sql(month, with_triggers=False)
    ]
    if partitioned:
        statements += partitions.default_sql(with_triggers=False)
    key = "id, created_at" if partitioned else "id"
    position = "chain, seq, created_at" if partitioned else "chain, seq"
    statements += [
        f"INSERT INTO {TABLE} SELECT * FROM {OLD};",  # noqa: S608  # nosec B608
        # CASCADE: the partitions of a partitioned table going back to a plain one.
        f"DROP TABLE {OLD} CASCADE;",
        f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY ({key});",
        f"ALTER TABLE {TABLE} ADD CONSTRAINT payment_audit_chain_seq_unique UNIQUE ({position});",
        f"ALTER TABLE {TABLE} ADD CONSTRAINT {fk_name} FOREIGN KEY (user_id) "
        f"REFERENCES {user_table} (id) DEFERRABLE INITIALLY DEFERRED;",
    ]
    triggers.execute(connection, statements)
    for index in model._meta.indexes:
        schema_editor.add_index(model, index)
    triggers.execute(
        connection,
        [
            f"CREATE INDEX payment_audit_action_trgm ON {TABLE} "
            "USING gin (action_type gin_trgm_ops);",
            # The parent's triggers, and each partition's TRUNCATE trigger.
            *triggers.install_sql("postgresql", (TABLE,)),
            *([partitions.INDEX_NAMES_SQL] if partitioned else []),
            f"ANALYZE {TABLE};",
        ],
    )


def partition(apps, schema_editor):
    _rebuild(apps, schema_editor, partitioned=True)


def unpartition(apps, schema_editor):
    _rebuild(apps, schema_editor, partitioned=False)


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    triggers.execute(
        schema_editor.connection, triggers.install_sql(vendor, triggers.DETACHMENT_TABLES)
    )


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    triggers.execute(
        schema_editor.connection, triggers.uninstall_sql(vendor, triggers.DETACHMENT_TABLES)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audits", "0008_fraud_signals"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditDetachment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "month",
                    models.DateField(help_text="the first day of the month detached", unique=True),
                ),
                ("partition", models.CharField(max_length=63)),
                ("rows", models.PositiveBigIntegerField()),
                (
                    "file_name",
                    models.CharField(
                        help_text="the exported rows (evidence format)", max_length=255
                    ),
                ),
                ("file_sha256", models.CharField(max_length=64)),
                (
                    "boundary",
                    models.JSONField(
                        help_text='{"chain": [seq, row_hash]}: every chain\'s last row in cold storage'
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "checkpoint_pk",
                    models.PositiveBigIntegerField(
                        help_text="the signed checkpoint that covered every row detached"
                    ),
                ),
            ],
            options={
                "db_table": "payment_audit_detachments",
                "ordering": ["-month"],
            },
        ),
        migrations.RunPython(install, uninstall),
        migrations.RunPython(partition, unpartition),
    ]
