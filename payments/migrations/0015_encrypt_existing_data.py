"""Encrypt what was stored in the clear: merchant contacts (with their blind index) and
chargeback evidence files. Reversing leaves the data encrypted (it stays readable)."""

from django.db import migrations

from audits.crypto.legacy import seal_plaintext_files, seal_plaintext_values


def encrypt(apps, schema_editor):
    seal_plaintext_values(apps.get_model("payments", "Merchant"))
    seal_plaintext_files(apps.get_model("payments", "EvidenceFile"), "file")


class Migration(migrations.Migration):
    dependencies = [("payments", "0014_encrypt_merchant_contact")]

    operations = [migrations.RunPython(encrypt, migrations.RunPython.noop)]
