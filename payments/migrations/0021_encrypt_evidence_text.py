"""Chargeback evidence text encrypted at rest (it names the customer); the drafts stored before
are encrypted by the data migration below. Reversing leaves them encrypted (still readable)."""

from django.db import migrations

import audits.crypto.fields
from audits.crypto.legacy import seal_plaintext_values


def encrypt(apps, schema_editor):
    seal_plaintext_values(apps.get_model("payments", "ChargebackEvidence"))


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0020_fraud_rules"),
    ]

    operations = [
        migrations.AlterField(
            model_name="chargebackevidence",
            name="text",
            field=audits.crypto.fields.EncryptedTextField(blank=True),
        ),
        migrations.RunPython(encrypt, migrations.RunPython.noop),
    ]
