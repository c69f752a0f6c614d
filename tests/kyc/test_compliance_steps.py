"""The compliance steps before a decision (issue 12 point 4): every screening hit disposed,
every document accepted, the two decision tabs, only the actions a person may take now, and
one risk (score and level from the same scoring) on every screen. Each refusal leaves the
database as it was."""

from __future__ import annotations

from typing import Any

import pytest
from auditlog.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audits import roles
from kyc import selectors, services
from kyc.exceptions import KycError, NotAllowed, NotReadyForApproval
from kyc.models import KycCase, KycDocument, ScreeningResult
from kyc.risk import case_risk
from payments.models import ApprovalRequest
from tests.conftest import make_staff
from tests.kyc.factories import KycCaseFactory, ScreeningResultFactory
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%%EOF\n"
HIT_NAME = "Nordwind Shipping GmbH"  # on the offline screening list


@pytest.fixture(autouse=True)
def _screen_on_commit(django_capture_on_commit_callbacks: Any) -> None:
    global _capture
    _capture = django_capture_on_commit_callbacks


_capture: Any = None


@pytest.fixture
def officer2(db: None) -> Any:
    return make_staff("officer2", roles.COMPLIANCE_OFFICER)


def _in_review(analyst: Any, *, name: str = "Corner Shop Ltd", risk: str = "low") -> KycCase:
    merchant = MerchantFactory(
        status="pending", legal_name=name, trading_name=name, risk_level=risk
    )
    case = services.kyc_case_create(merchant=merchant, kind="kyb")
    services.kyc_document_upload(
        case=case, document_type="passport", upload=SimpleUploadedFile("p.pdf", PDF)
    )
    with _capture(execute=True):  # screening runs after the submission commits
        services.kyc_case_submit(case=case)
    services.kyc_case_assign_self(case=case, actor=analyst)
    return services.kyc_case_start_review(case=case, actor=analyst)


def _accept_documents(case: KycCase, person: Any) -> None:
    for document in case.documents.filter(review_status="pending"):
        services.kyc_document_review(document=document, review_status="accepted", actor=person)


def _dispose_all(case: KycCase, person: Any) -> None:
    for hit in case.screening_results.filter(disposition="pending"):
        services.screening_result_dispose(
            result=hit, disposition="false_positive", reason="another company", actor=person
        )


def _snapshot() -> tuple[Any, ...]:
    """What a refusal must leave as it was."""
    return (
        list(KycCase.objects.order_by("pk").values()),
        list(ScreeningResult.objects.order_by("pk").values()),
        list(KycDocument.objects.order_by("pk").values()),
        list(ApprovalRequest.objects.order_by("pk").values()),
        LogEntry.objects.count(),
    )


# --- 1. Screening hits get a disposition ---------------------------------------------------


class TestDisposition:
    def test_a_hit_is_disposed_with_its_reason_by_whom_and_when_and_audited(
        self, analyst: Any
    ) -> None:
        case = _in_review(analyst, name=HIT_NAME)
        hit = case.screening_results.get()
        assert hit.disposition == "pending"
        services.screening_result_dispose(
            result=hit, disposition="true_match", reason="same registry number", actor=analyst
        )
        hit.refresh_from_db()
        assert (hit.disposition, hit.disposition_reason, hit.disposed_by) == (
            "true_match",
            "same registry number",
            analyst,
        )
        assert hit.disposed_at is not None
        entry = LogEntry.objects.filter(
            content_type__model="screeningresult", object_pk=str(hit.pk), action=1
        ).get()
        assert entry.actor == analyst
        assert entry.changes_dict["disposition"] == ["pending", "true_match"]

    def test_an_officer_corrects_a_disposition_and_a_first_approval_is_void(
        self, analyst: Any, officer: Any
    ) -> None:
        case = _in_review(analyst, name=HIT_NAME)
        _accept_documents(case, analyst)
        _dispose_all(case, analyst)
        services.kyc_case_approve(case=case, actor=officer)  # four eyes: the first approval
        assert ApprovalRequest.objects.get().status == "pending"
        services.screening_result_dispose(
            result=case.screening_results.get(),
            disposition="true_match",
            reason="the director is the listed person",
            actor=officer,
        )
        assert ApprovalRequest.objects.get().status == "rejected"
        assert "disposition changed" in ApprovalRequest.objects.get().decision_note

    @pytest.mark.parametrize(
        ("disposition", "reason", "who", "error", "message"),
        [
            ("maybe", "x", "assignee", KycError, "true match or a false positive"),
            ("pending", "x", "assignee", KycError, "true match or a false positive"),
            ("false_positive", "  ", "assignee", KycError, "Give a reason"),
            ("false_positive", "x", "other analyst", NotAllowed, "Only the assignee"),
            ("false_positive", "x", "payments operations", NotAllowed, "change_kyccase"),
            ("false_positive", "x", "auditor", NotAllowed, "change_kyccase"),
        ],
    )
    def test_bad_dispositions_are_refused_and_nothing_is_written(
        self, analyst: Any, disposition: str, reason: str, who: str, error: Any, message: str
    ) -> None:
        case = _in_review(analyst, name=HIT_NAME)
        actor = {
            "assignee": analyst,
            "other analyst": make_staff("analyst2", roles.KYC_ANALYST),
            "payments operations": make_staff("ops2", roles.PAYMENTS_OPERATIONS),
            "auditor": make_staff("auditor2", roles.AUDITOR),
        }[who]
        before = _snapshot()
        with pytest.raises(error, match=message):
            services.screening_result_dispose(
                result=case.screening_results.get(),
                disposition=disposition,
                reason=reason,
                actor=actor,
            )
        assert _snapshot() == before

    def test_the_same_disposition_twice_and_a_decided_case_are_refused(
        self, analyst: Any, officer: Any
    ) -> None:
        case = _in_review(analyst, name=HIT_NAME)
        _dispose_all(case, analyst)
        before = _snapshot()
        with pytest.raises(KycError, match="already marked False positive"):
            _dispose_all_again(case, analyst)
        assert _snapshot() == before
        services.kyc_case_reject(
            case=case, reason_code="sanctions_match", reason_text="", actor=officer
        )
        before = _snapshot()
        with pytest.raises(KycError, match="rejected: screening hits are disposed while"):
            services.screening_result_dispose(
                result=case.screening_results.get(),
                disposition="true_match",
                reason="confirmed",
                actor=officer,
            )
        assert _snapshot() == before


def _dispose_all_again(case: KycCase, person: Any) -> None:
    for hit in case.screening_results.all():
        services.screening_result_dispose(
            result=hit, disposition="false_positive", reason="again", actor=person
        )


class TestUndisposedHitsBlockApproval:
    def test_the_first_approval_is_refused_and_says_which_hit(
        self, analyst: Any, officer: Any
    ) -> None:
        case = _in_review(analyst, name=HIT_NAME)
        _accept_documents(case, analyst)
        before = _snapshot()
        with pytest.raises(NotReadyForApproval, match="1 screening hit not disposed yet"):
            services.kyc_case_approve(case=case, actor=officer)
        assert _snapshot() == before

    def test_a_low_risk_case_with_a_hit_outside_the_services_is_refused_too(
        self, analyst: Any, officer: Any
    ) -> None:
        case = _in_review(analyst)
        _accept_documents(case, analyst)
        # A hit that arrived without kyc_case_screen (an import): the case is not even four eyes.
        ScreeningResultFactory(case=case, category="adverse_media")
        before = _snapshot()
        with pytest.raises(NotReadyForApproval, match=r"Nordwind Shipping\)"):
            services.kyc_case_approve(case=case, actor=officer)
        assert _snapshot() == before

    def _first_approved_with_a_new_hit(self, analyst: Any, officer: Any) -> tuple[KycCase, Any]:
        case = _in_review(analyst, name=HIT_NAME)
        _accept_documents(case, analyst)
        _dispose_all(case, analyst)
        services.kyc_case_approve(case=case, actor=officer)
        # A second hit stored past the services (which would void the first approval).
        ScreeningResultFactory(case=case, matched_name="Nordwind Shipping Holdings")
        return case, ApprovalRequest.objects.get(status="pending")

    def test_the_final_approval_on_the_case_screen_is_refused(
        self, client: Any, analyst: Any, officer: Any, officer2: Any
    ) -> None:
        case, _ = self._first_approved_with_a_new_hit(analyst, officer)
        client.force_login(officer2)
        page = client.get(reverse("kyc:case", args=[case.pk])).content.decode()
        assert 'data-action="approve"' not in page
        assert "Nordwind Shipping Holdings): mark each a true match" in page
        before = _snapshot()
        response = client.post(
            reverse("kyc:case-action", args=[case.pk, "approve"]),
            {"seen_status": "in_review", "confirm": "on"},
            follow=True,
        )
        assert "cannot be approved yet: 1 screening hit not disposed yet" in (
            response.content.decode()
        )
        assert _snapshot() == before

    def test_the_final_approval_in_the_approvals_inbox_is_refused(
        self, client: Any, analyst: Any, officer: Any
    ) -> None:
        _, request = self._first_approved_with_a_new_hit(analyst, officer)
        administrator = make_staff("admin2", roles.ADMINISTRATOR)
        client.force_login(administrator)
        before = _snapshot()
        response = client.post(
            reverse("payments:approval-decide", args=[request.pk]),
            {"decision": "approve", "note": "fine"},
            follow=True,
        )
        assert "cannot be approved yet" in response.content.decode()
        assert _snapshot() == before

    def test_the_final_approval_by_a_console_action_is_refused(
        self, client: Any, settings: Any, analyst: Any, officer: Any
    ) -> None:
        settings.STAFF_REQUIRE_OTP = False
        _, request = self._first_approved_with_a_new_hit(analyst, officer)
        client.force_login(make_staff("admin2", roles.ADMINISTRATOR))
        before = _snapshot()
        response = client.post(
            reverse("admin:payments_approvalrequest_changelist"),
            {"action": "approve", "_selected_action": [request.pk]},
            follow=True,
        )
        assert "cannot be approved yet" in response.content.decode()
        assert _snapshot() == before


class TestDispositionOnTheCaseScreen:
    def test_the_assignee_disposes_of_a_hit_next_to_it(self, client: Any, analyst: Any) -> None:
        case = _in_review(analyst, name=HIT_NAME)
        hit = case.screening_results.get()
        client.force_login(analyst)
        page = client.get(reverse("kyc:case", args=[case.pk])).content.decode()
        assert f'data-hit="{hit.pk}"' in page and f'id="id_hit{hit.pk}_reason"' in page
        response = client.post(
            reverse("kyc:screening-dispose", args=[case.pk]),
            {
                "seen_status": "in_review",
                "result": hit.pk,
                "disposition": "false_positive",
                "reason": "registered in another country",
                "confirm": "on",
            },
            follow=True,
        )
        page = response.content.decode()
        assert f"Screening hit {hit.matched_name}: False positive." in page
        assert "registered in another country" in page
        assert ScreeningResult.objects.get(pk=hit.pk).disposition == "false_positive"

    def test_a_mistake_is_shown_next_to_its_field_and_nothing_is_written(
        self, client: Any, analyst: Any
    ) -> None:
        case = _in_review(analyst, name=HIT_NAME)
        hit = case.screening_results.get()
        client.force_login(analyst)
        before = _snapshot()
        response = client.post(
            reverse("kyc:screening-dispose", args=[case.pk]),
            {"seen_status": "in_review", "result": hit.pk, "disposition": "true_match"},
        )
        assert response.status_code == 400
        page = response.content.decode()
        # Django renders a field's errors inside its own div, right before the field.
        reason_field = page.split(f'for="id_hit{hit.pk}_reason"')[1].split("<textarea")[0]
        assert "This field is required." in reason_field
        assert f'id="id_hit{hit.pk}_confirm"' in page
        assert _snapshot() == before

    def test_a_refusal_by_the_service_is_shown_on_the_form(self, client: Any, analyst: Any) -> None:
        case = _in_review(analyst, name=HIT_NAME)
        hit = case.screening_results.get()
        _dispose_all(case, analyst)
        client.force_login(analyst)
        before = _snapshot()
        response = client.post(
            reverse("kyc:screening-dispose", args=[case.pk]),
            {
                "seen_status": "in_review",
                "result": hit.pk,
                "disposition": "false_positive",
                "reason": "again",
                "confirm": "on",
            },
        )
        assert response.status_code == 400
        assert "already marked False positive" in response.content.decode()
        assert _snapshot() == before

    def test_a_hit_of_another_case_is_not_found(self, client: Any, analyst: Any) -> None:
        case = _in_review(analyst, name=HIT_NAME)
        other = ScreeningResultFactory()
        client.force_login(analyst)
        before = _snapshot()
        for result in (other.pk, "x"):
            response = client.post(
                reverse("kyc:screening-dispose", args=[case.pk]),
                {"seen_status": "in_review", "result": result, "disposition": "true_match"},
            )
            assert response.status_code == 404
        assert _snapshot() == before


# --- 2. Every document reviewed before approval ---------------------------------------------


@pytest.mark.parametrize("review_status", ["pending", "rejected", "reupload_requested"])
def test_approval_waits_for_every_document_and_names_it(
    analyst: Any, officer: Any, review_status: str
) -> None:
    case = _in_review(analyst)
    _accept_documents(case, analyst)
    services.kyc_document_upload(
        case=case, document_type="proof_of_address", upload=SimpleUploadedFile("a.pdf", PDF)
    )
    if review_status != "pending":
        document = case.documents.get(document_type="proof_of_address")
        with transaction.atomic():  # as the review left it (a re-upload also reopens the case)
            document.review_status, document.review_reason = review_status, "blurred"
            document.save()
    label = review_status.replace("_", " ")
    before = _snapshot()
    with pytest.raises(
        NotReadyForApproval, match=rf"documents not accepted yet: Proof Of Address \({label}\)"
    ):
        services.kyc_case_approve(case=case, actor=officer)
    assert _snapshot() == before


def test_a_case_without_documents_cannot_be_approved(officer: Any) -> None:
    case = KycCaseFactory(status="in_review")
    before = _snapshot()
    with pytest.raises(NotReadyForApproval, match="no document has been uploaded"):
        services.kyc_case_approve(case=case, actor=officer)
    assert _snapshot() == before


# --- 3. The two decision tabs ----------------------------------------------------------------


def test_waiting_for_decision_and_for_second_approval_tabs(
    client: Any, analyst: Any, officer: Any
) -> None:
    unjudged = _in_review(analyst, name="Unjudged Ltd")
    ready = _in_review(analyst, name="Ready Ltd")
    _accept_documents(ready, analyst)
    first = _in_review(analyst, name=HIT_NAME)
    _accept_documents(first, analyst)
    _dispose_all(first, analyst)
    services.kyc_case_approve(case=first, actor=officer)
    now = timezone.now()

    def tab(name: str) -> set[int]:
        return set(selectors.queue(tab=name, user=officer, now=now).values_list("pk", flat=True))

    assert tab("waiting_decision") == {ready.pk}
    assert tab("waiting_second_approval") == {first.pk}
    assert unjudged.pk not in tab("waiting_decision") | tab("waiting_second_approval")
    counts = selectors.tab_counts(user=officer, now=now)
    assert (counts["waiting_decision"], counts["waiting_second_approval"]) == (1, 1)
    client.force_login(officer)
    page = client.get(reverse("kyc:queue") + "?tab=waiting_second_approval").content.decode()
    assert 'Waiting for decision <span class="badge">1</span>' in page
    assert 'aria-current="page">Waiting for second approval <span class="badge">1</span>' in page
    assert first.reference in page and ready.reference not in page


# --- 4. Only the actions a person may take now -----------------------------------------------


def test_no_final_approval_button_for_the_first_approver_nor_the_preparer(
    client: Any, officer: Any, officer2: Any
) -> None:
    preparer = make_staff("officer3", roles.COMPLIANCE_OFFICER)
    case = _in_review(preparer, risk="high")
    _accept_documents(case, preparer)
    services.kyc_case_approve(case=case, actor=officer)

    def page(user: Any) -> str:
        client.force_login(user)
        return client.get(reverse("kyc:case", args=[case.pk])).content.decode()

    assert 'data-action="approve"' not in page(officer)
    assert "You gave the first approval: another officer gives the final one." in page(officer)
    assert 'data-action="approve"' not in page(preparer)
    assert "You prepared this case" in page(preparer)
    assert 'data-action="approve"' in page(officer2) and "(final approval)" in page(officer2)
    assert 'data-action="reject"' in page(officer)  # saying no stays open to them
    for user, message in ((officer, "You gave the first"), (preparer, "You prepared")):
        before = _snapshot()
        with pytest.raises(NotAllowed, match=message):
            services.kyc_case_approve(case=case, actor=user)
        assert _snapshot() == before


def test_the_first_approver_is_refused_in_the_approvals_inbox(client: Any, analyst: Any) -> None:
    administrator = make_staff("admin1", roles.ADMINISTRATOR)
    case = _in_review(analyst, risk="high")
    _accept_documents(case, analyst)
    services.kyc_case_approve(case=case, actor=administrator)
    request = ApprovalRequest.objects.get()
    client.force_login(administrator)
    before = _snapshot()
    response = client.post(
        reverse("payments:approval-decide", args=[request.pk]),
        {"decision": "approve", "note": "me again"},
        follow=True,
    )
    assert "a second person must approve it" in response.content.decode()
    assert _snapshot() == before


# --- 5. One risk on every screen ------------------------------------------------------------


@pytest.mark.parametrize(
    ("scored", "score", "level", "hit", "shown"),
    [
        (False, 0, "high", False, "High (merchant rating; not scored yet)"),
        (True, 75, "high", False, "High (75/100)"),
        (True, 10, "high", False, "High (merchant rating; scored Low, 10/100)"),
        (True, 10, "low", True, "High (10/100)"),  # a hit is high whatever the points
        (True, 45, "low", False, "Medium (45/100)"),  # a stale stored level: the score wins
    ],
)
def test_score_and_level_come_from_the_same_scoring(
    scored: bool, score: int, level: str, hit: bool, shown: str
) -> None:
    assert str(case_risk(scored=scored, score=score, level=level, screening_hit=hit)) == shown


def test_an_unscored_case_reads_the_same_on_case_queue_and_merchant_screens(
    client: Any, officer: Any
) -> None:
    merchant = MerchantFactory(status="pending", risk_level="high", legal_name="Unscored Ltd")
    case = services.kyc_case_create(merchant=merchant, kind="kyb")
    client.force_login(officer)
    shown = "High (merchant rating; not scored yet)"
    for url in (
        reverse("kyc:case", args=[case.pk]),
        reverse("kyc:queue") + "?tab=all",
        reverse("kyc:merchant", args=[merchant.pk]),
    ):
        page = client.get(url).content.decode()
        assert shown in page, url
        assert "(0/100)" not in page and "High (0)" not in page
    page = client.get(reverse("kyc:case", args=[case.pk])).content.decode()
    assert "Not scored yet" in page and "No risk factors scored yet" not in page


def test_a_scored_case_shows_its_factors_score_and_level_together(
    client: Any, analyst: Any, officer: Any
) -> None:
    case = _in_review(analyst, name=HIT_NAME)
    client.force_login(officer)
    page = client.get(reverse("kyc:case", args=[case.pk])).content.decode()
    assert f"High ({case.risk_score}/100)" in page
    assert f"<strong>{case.risk_score}</strong>/100" in page
