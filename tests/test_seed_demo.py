from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from kyc.models import KycCase
from payments.models import Chargeback, Merchant, Payment, Refund


@pytest.mark.django_db
def test_demo_data_loads_twice_without_error_or_duplicates(settings, tmp_path, monkeypatch) -> None:
    from kyc.management.commands import seed_demo

    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", tmp_path / "demo_credentials.json")
    first = io.StringIO()
    call_command("seed_demo", stdout=first)
    counts = [m.objects.count() for m in (Merchant, KycCase, Payment, Refund, Chargeback, User)]
    second = io.StringIO()
    call_command("seed_demo", stdout=second)
    assert [
        m.objects.count() for m in (Merchant, KycCase, Payment, Refund, Chargeback, User)
    ] == counts
    assert "already loaded" in second.getvalue()
    # Every KYC state is there, and each role has a user whose password is printed.
    assert set(KycCase.objects.values_list("status", flat=True)) == set(KycCase.Status.values)
    for username in ("analyst", "officer", "ops", "auditor", "admin"):
        password = next(
            line.split()[1]
            for line in second.getvalue().splitlines()
            if line.strip().startswith(username + " ")
        )
        assert User.objects.get(username=username).check_password(password)
    call_command("verify_audit_chain", stdout=io.StringIO())
