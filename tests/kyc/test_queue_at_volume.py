"""The KYC queue and the console's case list cost the same at 100,000 cases as at 100 (issue 14,
point 7): the first page is read from the (due_at, id) index in the lists' order, and the tab
badges count no further than TAB_COUNT_LIMIT + 1 rows."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import QuerySet
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kyc import selectors
from kyc.admin import KycCaseAdmin
from kyc.models import KycCase
from tests.kyc.factories import KycCaseFactory
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

CASES = 20_000


def _fill(cases: int) -> None:
    """Submitted cases straight into the table, past the audited manager (test data: the
    rollback takes them), due over the next 500 hours."""
    merchant = MerchantFactory()
    now = timezone.now()
    QuerySet(KycCase).bulk_create(
        [
            KycCase(
                reference=f"KYC-T{n}",
                merchant=merchant,
                kind=KycCase.Kind.KYB,
                status=KycCase.Status.SUBMITTED,
                due_at=now + datetime.timedelta(hours=n % 500),
            )
            for n in range(cases)
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE kyc_kyccase")


@pytest.mark.postgres
def test_the_queue_and_the_console_read_their_first_page_from_the_due_index(
    administrator: User,
) -> None:
    _fill(CASES)
    queue = selectors.queue(tab="all", user=administrator, now=timezone.now())
    console = KycCase.objects.select_related(*KycCaseAdmin.list_select_related).order_by(
        *KycCase._meta.ordering
    )
    for rows in (queue, console):
        plan = rows[:51].explain()
        assert "kyc_case_due_idx" in plan, plan
        assert "Seq Scan on kyc_kyccase" not in plan, plan


def test_tab_counts_stop_past_the_limit_and_the_badge_says_so(
    administrator: User, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "TAB_COUNT_LIMIT", 3)
    KycCaseFactory.create_batch(5)
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        counts = selectors.tab_counts(user=administrator, now=now)
    assert counts["all"] == 4  # one past the limit: enough to say "more"
    assert counts["unassigned"] == 4
    assert counts["escalated"] == 0
    # Every badge is one bounded query: a COUNT over a LIMIT, never the whole table.
    assert len(queries) == len(selectors.QUEUE_TABS)
    assert all("LIMIT 4" in q["sql"] for q in queries.captured_queries)
    client.force_login(administrator)
    page = client.get("/kyc/?tab=all").content.decode()
    assert 'aria-current="page">All <span class="badge">3+</span>' in page
    assert 'Escalated <span class="badge">0</span>' in page


def test_the_console_case_list_reads_no_column_over_every_case(
    administrator: User, client: Client
) -> None:
    KycCaseFactory.create_batch(3)
    client.force_login(administrator)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/kyc/kyccase/")
    assert response.status_code == 200
    # Neither a date hierarchy (MIN/MAX, DISTINCT over created_at) nor a full COUNT(*).
    over_cases = [q["sql"] for q in queries.captured_queries if '"kyc_kyccase"' in q["sql"]]
    assert not [sql for sql in over_cases if "DISTINCT" in sql or "MIN(" in sql], over_cases
    assert not [sql for sql in over_cases if "COUNT(*)" in sql and "LIMIT" not in sql], over_cases
