"""Encrypt KYC document files stored in the clear. Reversing leaves them encrypted."""

from django.db import migrations

from audits.crypto.legacy import seal_plaintext_files


def encrypt(apps, schema_editor):
    seal_plaintext_files(apps.get_model("kyc", "KycDocument"), "file")


class Migration(migrations.Migration):
    dependencies = [("kyc", "0004_screening_disposition")]

    operations = [migrations.RunPython(encrypt, migrations.RunPython.noop)]
