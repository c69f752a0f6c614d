"""The read replica, on two PostgreSQL databases: the second is a copy of the first taken at one
moment (what a lagging standby holds), so a screen shows which one it read from."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audits import roles
from payments.models import Payment
from tests.conftest import make_staff
from tests.payments.factories import PaymentFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _admin_connection() -> psycopg.Connection[Any]:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


@contextlib.contextmanager
def replica_copy(settings: Any) -> Iterator[str]:
    """A second database, copied from the test database now, configured as the replica."""
    source = connection.settings_dict["NAME"]
    name = f"{source}_replica"
    connections.close_all()  # CREATE DATABASE ... TEMPLATE needs the source without sessions
    with _admin_connection() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    connections.settings["replica"] = {**connection.settings_dict, "NAME": name}
    # Connect now: the test case refuses to open a connection for an alias it was not told of
    # (Django's isolation check); an open one is used as it is.
    connections["replica"].connect()
    settings.DATABASE_REPLICA_ALIAS = "replica"
    try:
        yield name
    finally:
        connections["replica"].close()
        del connections["replica"]
        del connections.settings["replica"]
        with _admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_read_only_screens_and_exports_read_the_replica_and_nothing_else_does(
    settings: Any,
) -> None:
    copied = PaymentFactory(gateway_reference="pi_on_both")
    with replica_copy(settings):
        # Written after the copy: only the primary has these, as with a replica that lags.
        later = PaymentFactory(gateway_reference="pi_primary_only")
        ops = make_staff("ops_replica", roles.PAYMENTS_OPERATIONS)  # sign-in reads the primary
        client = Client()
        client.force_login(ops)

        with CaptureQueriesContext(connections["replica"]) as on_replica:
            listing = client.get("/payments/")
            export = b"".join(client.get("/payments/export.csv").streaming_content).decode()
        assert listing.status_code == 200
        page = listing.content.decode()
        assert f"/payments/{copied.pk}/" in page
        assert f"/payments/{later.pk}/" not in page
        assert "pi_on_both" in export and "pi_primary_only" not in export
        assert len(on_replica) >= 2  # the list's page and the export's rows

        # A screen that writes (the payment's page, where refunds are asked) reads the primary.
        with CaptureQueriesContext(connections["replica"]) as on_replica:
            detail = client.get(f"/payments/{later.pk}/")
        assert detail.status_code == 200
        assert "pi_primary_only" in detail.content.decode()
        assert len(on_replica) == 0

        # Outside those views, reads go to the primary.
        assert Payment.objects.filter(gateway_reference="pi_primary_only").exists()
        # Writes always go to the primary, even inside a replica view's reach.
        assert not Payment.objects.using("replica").filter(pk=later.pk).exists()


def test_without_a_replica_the_same_screens_read_the_primary(settings: Any) -> None:
    settings.DATABASE_REPLICA_ALIAS = "replica"  # named, but no such database configured
    payment = PaymentFactory(gateway_reference="pi_single")
    client = Client()
    client.force_login(make_staff("ops_single", roles.PAYMENTS_OPERATIONS))
    assert f"/payments/{payment.pk}/" in client.get("/payments/").content.decode()
