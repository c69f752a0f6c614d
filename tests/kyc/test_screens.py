"""The review screens: the right actions for the right people, refusals that change nothing,
and a bounded number of queries at 10 or 10,000 cases."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from kyc import services
from kyc.models import KycCase
from payments.models import Merchant
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def case(django_capture_on_commit_callbacks) -> KycCase:
    merchant = MerchantFactory(status="pending", legal_name="Corner Shop Ltd", risk_level="low")
    case = services.kyc_case_create(merchant=merchant, kind="kyb")
    services.kyc_document_upload(
        case=case, document_type="passport", upload=SimpleUploadedFile("p.pdf", PDF)
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.kyc_case_submit(case=case)
    return KycCase.objects.get(pk=case.pk)


def _page(client, user, case) -> str:
    client.force_login(user)
    response = client.get(reverse("kyc:case", args=[case.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _post(client, case, action, **data):
    return client.post(
        reverse("kyc:case-action", args=[case.pk, action]),
        {"seen_status": case.status, "confirm": "on", **data},
        follow=True,
    )


def test_the_analyst_sees_only_what_they_may_do(client, analyst, case) -> None:
    page = _page(client, analyst, case)
    assert 'data-action="take"' in page
    assert 'data-action="approve"' not in page and 'data-action="reject"' not in page
    _post(client, case, "take")
    page = _page(client, analyst, KycCase.objects.get(pk=case.pk))
    assert 'data-action="start_review"' in page and 'data-action="release"' in page
    assert 'data-action="take"' not in page


def test_officers_see_decisions_on_a_case_in_review(client, analyst, officer, case) -> None:
    services.kyc_case_take_next(actor=analyst)
    services.kyc_case_start_review(case=case, actor=analyst)
    services.kyc_document_review(
        document=case.documents.get(), review_status="accepted", actor=analyst
    )
    page = _page(client, officer, case)
    assert 'data-action="approve"' in page and 'data-action="reject"' in page
    assert 'data-action="request_information"' not in page  # not the assignee


def test_a_stale_page_changes_nothing(client, analyst, case) -> None:
    services.kyc_case_take_next(actor=analyst)
    client.force_login(analyst)
    stale = KycCase.objects.get(pk=case.pk)
    services.kyc_case_start_review(case=stale, actor=analyst)  # in another tab
    response = client.post(
        reverse("kyc:case-action", args=[case.pk, "start_review"]),
        {"seen_status": "submitted", "confirm": "on"},
        follow=True,
    )
    assert "changed since you opened it" in response.content.decode()
    entries = LogEntry.objects.filter(content_type__model="kyccase", object_pk=str(case.pk))
    count = entries.count()
    response = client.post(
        reverse("kyc:case-action", args=[case.pk, "request_information"]),
        {"seen_status": "submitted", "confirm": "on", "message": "x"},
        follow=True,
    )
    assert entries.count() == count
    assert KycCase.objects.get(pk=case.pk).status == "in_review"


def test_a_forged_post_is_refused_and_changes_nothing(client, analyst, case) -> None:
    client.force_login(analyst)
    services.kyc_case_take_next(actor=analyst)
    services.kyc_case_start_review(case=case, actor=analyst)
    case.refresh_from_db()
    response = _post(client, case, "approve", reason="looks good to me")
    assert "You cannot approve on this case now." in response.content.decode()
    assert KycCase.objects.get(pk=case.pk).status == "in_review"
    response = _post(client, case, "approve")  # without a reason, still refused
    assert KycCase.objects.get(pk=case.pk).status == "in_review"


def test_required_reasons_are_asked_for(client, analyst, case) -> None:
    services.kyc_case_take_next(actor=analyst)
    services.kyc_case_start_review(case=case, actor=analyst)
    case.refresh_from_db()
    client.force_login(analyst)
    response = _post(client, case, "escalate", reason="")
    assert (
        "Escalate to a compliance officer: Reason — This field is required."
        in response.content.decode()
    )
    response = client.post(
        reverse("kyc:case-action", args=[case.pk, "escalate"]),
        {"seen_status": case.status, "reason": "odd"},
        follow=True,
    )
    assert "I confirm — This field is required." in response.content.decode()
    assert KycCase.objects.get(pk=case.pk).status == "in_review"


def test_payments_operations_see_the_outcome_not_the_documents(client, ops, case) -> None:
    page = _page(client, ops, case)
    assert "outcome, not its documents." in page
    document = case.documents.get()
    assert (
        client.get(reverse("kyc:document-file", args=[document.pk, "download"])).status_code == 403
    )


def test_document_views_and_downloads_are_audited(client, analyst, case) -> None:
    client.force_login(analyst)
    document = case.documents.get()
    response = client.get(reverse("kyc:document-file", args=[document.pk, "view"]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == PDF
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "inline" in response["Content-Disposition"]
    response = client.get(reverse("kyc:document-file", args=[document.pk, "download"]))
    assert "attachment" in response["Content-Disposition"]
    accesses = LogEntry.objects.filter(
        action=LogEntry.Action.ACCESS, actor=analyst, object_pk=str(document.pk)
    )
    assert sorted(e.additional_data["access"] for e in accesses) == ["download", "view"]


def test_take_next_from_the_queue(client, analyst, case) -> None:
    client.force_login(analyst)
    response = client.post(reverse("kyc:take-next"), follow=True)
    assert f"{case.reference} is yours." in response.content.decode()
    response = client.post(reverse("kyc:take-next"), follow=True)
    assert "No unassigned case is waiting" in response.content.decode()


def test_auditors_read_and_change_nothing(client, auditor, case) -> None:
    page = _page(client, auditor, case)
    assert "data-action=" not in page
    response = _post(client, case, "take")
    assert "You cannot take this case" in response.content.decode()
    assert KycCase.objects.get(pk=case.pk).assignee is None


def _bulk_cases(n: int, start: int = 0) -> None:
    """Test data at volume, inserted directly (the audited paths refuse bulk writes)."""
    merchant = MerchantFactory()
    now = timezone.now()
    # A plain QuerySet, deliberately outside the audited managers: test data only.
    QuerySet(KycCase).bulk_create(
        [
            KycCase(
                merchant=merchant,
                kind="kyb",
                status="submitted",
                risk_level="low",
                reference=f"KYC-B{start + i:06d}",
                submitted_at=now,
                due_at=now,
            )
            for i in range(n)
        ],
        batch_size=2000,
    )


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_screens_cost_the_same_queries_at_10_and_10000_cases(client, officer, case) -> None:
    client.force_login(officer)
    _bulk_cases(10)
    urls = [
        reverse("kyc:queue") + "?tab=all",
        reverse("kyc:queue") + "?tab=unassigned&q=shop",
        reverse("kyc:queue") + "?tab=waiting_decision",
        reverse("kyc:queue") + "?tab=waiting_second_approval",
        reverse("kyc:case", args=[case.pk]),
        reverse("kyc:merchant", args=[case.merchant_id]),
    ]
    few = [_queries(client, url) for url in urls]
    _bulk_cases(9_990, start=10)
    many = [_queries(client, url) for url in urls]
    assert few == many
    assert max(many) <= 25


def test_merchant_page_has_everything_in_one_place(client, officer, case) -> None:
    client.force_login(officer)
    page = client.get(reverse("kyc:merchant", args=[case.merchant_id])).content.decode()
    assert case.reference in page and "Chargeback ratio this month" in page
    assert "Suspend after an adverse finding" not in page  # the merchant is not active
    Merchant.objects.filter(pk=case.merchant_id)  # still pending
