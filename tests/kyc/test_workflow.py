"""The KYC workflow: every transition for every role, four eyes, SLA, documents, screening."""

from __future__ import annotations

import datetime

import pytest
from auditlog.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from audits import roles
from kyc import services
from kyc.exceptions import KycError, NotAllowed
from kyc.models import KycCase, KycDocument, ScreeningResult
from kyc.owners import beneficial_owner_add
from kyc.screening import OfflineListProvider
from payments.core.errors import InvalidTransition
from payments.core.uploads import UploadRejected
from payments.models import ApprovalRequest, Merchant
from tests.conftest import make_staff, run_at_once
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


_capture = None


@pytest.fixture(autouse=True)
def _on_commit(django_capture_on_commit_callbacks):
    # Submission screens the case after commit; tests run inside a transaction.
    global _capture
    _capture = django_capture_on_commit_callbacks


@pytest.fixture
def officer2(db):
    return make_staff("officer2", roles.COMPLIANCE_OFFICER)


def _case(risk: str = "low", name: str = "Harmless Bakery Ltd", **kw) -> KycCase:
    merchant = MerchantFactory(
        status=Merchant.Status.PENDING, legal_name=name, trading_name=name, risk_level=risk, **kw
    )
    case = services.kyc_case_create(merchant=merchant, kind="kyb")
    services.kyc_document_upload(
        case=case, document_type="company_registration", upload=SimpleUploadedFile("reg.pdf", PDF)
    )
    if _capture is None:  # a transactional test: callbacks run on the real commit
        return services.kyc_case_submit(case=case)
    with _capture(execute=True):
        case = services.kyc_case_submit(case=case)
    return KycCase.objects.get(pk=case.pk)


def _in_review(analyst, **kw) -> KycCase:
    case = _case(**kw)
    services.kyc_case_take_next(actor=analyst)
    return services.kyc_case_start_review(case=case, actor=analyst)


def _judge(case: KycCase, person) -> KycCase:
    """What the assignee does before a decision: accept every document, dispose of every hit."""
    for document in case.documents.filter(review_status="pending"):
        services.kyc_document_review(document=document, review_status="accepted", actor=person)
    for hit in case.screening_results.filter(disposition="pending"):
        services.screening_result_dispose(
            result=hit, disposition="false_positive", reason="another person", actor=person
        )
    return KycCase.objects.get(pk=case.pk)


def _ready(analyst, **kw) -> KycCase:
    """In review, its evidence judged: waiting for an officer's decision."""
    return _judge(_in_review(analyst, **kw), analyst)


def _entries(case: KycCase) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(object_pk=str(case.pk), content_type__model="kyccase").order_by(
            "timestamp"
        )
    )


def test_a_low_risk_case_from_submission_to_approval(analyst, officer) -> None:
    case = _case()
    assert (case.status, case.submitted_at is not None) == ("submitted", True)
    assert case.due_at is not None
    taken = services.kyc_case_take_next(actor=analyst)
    assert taken.pk == case.pk and taken.assignee == analyst
    services.kyc_case_start_review(case=case, actor=analyst)
    _judge(case, analyst)
    case = services.kyc_case_approve(case=case, actor=officer, reason="all verified")
    assert (case.status, case.decision, case.decided_by) == ("approved", "approve", officer)
    assert Merchant.objects.get(pk=case.merchant_id).status == "active"
    actors = {e.actor_id for e in _entries(case)}
    assert {analyst.pk, officer.pk} <= actors


def test_request_information_pauses_the_clock_and_resubmission_resumes_it(analyst) -> None:
    case = _in_review(analyst)
    due = case.due_at
    with pytest.raises(KycError, match="say what is missing"):
        services.kyc_case_request_information(case=case, message=" ", actor=analyst)
    case = services.kyc_case_request_information(
        case=case, actor=analyst, message="Proof of address, under 3 months"
    )
    assert case.status == "needs_information" and case.sla_paused_at is not None
    from kyc.selectors import kyc_case_missing

    assert kyc_case_missing(case) == ["Proof of address, under 3 months"]
    with pytest.raises(InvalidTransition):
        services.kyc_case_approve(case=case, actor=make_staff("o3", roles.COMPLIANCE_OFFICER))
    from django.db import transaction

    with transaction.atomic():  # two hours of waiting for the merchant
        case.sla_paused_at = timezone.now() - datetime.timedelta(hours=2)
        case.save()
    case = services.kyc_case_resubmit(case=case)
    assert case.status == "submitted" and case.sla_paused_at is None
    assert case.due_at - due >= datetime.timedelta(hours=2)


def test_only_the_assignee_works_a_case(analyst) -> None:
    other = make_staff("analyst2", roles.KYC_ANALYST)
    case = _case()
    services.kyc_case_take_next(actor=analyst)
    with pytest.raises(NotAllowed, match="Only the assignee"):
        services.kyc_case_start_review(case=case, actor=other)
    with pytest.raises(NotAllowed):
        services.kyc_case_release(case=case, actor=other)
    assert KycCase.objects.get(pk=case.pk).status == "submitted"
    services.kyc_case_release(case=case, actor=analyst)
    assert KycCase.objects.get(pk=case.pk).assignee is None


def test_a_lead_reassigns_and_an_analyst_cannot(analyst, officer) -> None:
    other = make_staff("analyst2", roles.KYC_ANALYST)
    case = _case()
    with pytest.raises(NotAllowed, match="reassign_kyccase"):
        services.kyc_case_assign(case=case, assignee=other, actor=analyst)
    services.kyc_case_assign(case=case, assignee=other, actor=officer)
    assert KycCase.objects.get(pk=case.pk).assignee == other


@pytest.mark.parametrize("role", [roles.KYC_ANALYST, roles.PAYMENTS_OPERATIONS, roles.AUDITOR])
def test_only_compliance_officers_decide(analyst, role) -> None:
    case = _in_review(analyst)
    person = make_staff(f"p-{role}", role)
    with pytest.raises(NotAllowed, match="decide_kyccase"):
        services.kyc_case_approve(case=case, actor=person)
    with pytest.raises(NotAllowed):
        services.kyc_case_reject(case=case, actor=person, reason_code="other", reason_text="no")
    assert KycCase.objects.get(pk=case.pk).status == "in_review"


@pytest.mark.parametrize("role", [roles.PAYMENTS_OPERATIONS, roles.AUDITOR])
def test_people_outside_kyc_cannot_take_cases(role) -> None:
    _case()
    with pytest.raises(NotAllowed):
        services.kyc_case_take_next(actor=make_staff(f"x-{role}", role))
    assert KycCase.objects.get().assignee is None


def test_rejection_needs_a_reason_from_the_list(analyst, officer) -> None:
    case = _in_review(analyst)
    with pytest.raises(KycError, match="from the list"):
        services.kyc_case_reject(case=case, reason_code="because", reason_text="", actor=officer)
    with pytest.raises(KycError, match="reason"):
        services.kyc_case_reject(case=case, reason_code="other", reason_text=" ", actor=officer)
    assert KycCase.objects.get(pk=case.pk).status == "in_review"
    case = services.kyc_case_reject(
        case=case, reason_code="ownership_unclear", reason_text="trust structure", actor=officer
    )
    assert case.decision_reason == "Ownership could not be established: trust structure"
    assert Merchant.objects.get(pk=case.merchant_id).status == "pending"


def test_escalation_goes_to_the_officers_with_a_reason(analyst, officer) -> None:
    case = _ready(analyst)
    with pytest.raises(KycError):
        services.kyc_case_escalate(case=case, reason="", actor=analyst)
    case = services.kyc_case_escalate(case=case, reason="complex ownership", actor=analyst)
    assert (case.status, case.assignee, case.escalation_reason) == (
        "escalated",
        None,
        "complex ownership",
    )
    services.kyc_case_approve(case=case, actor=officer)
    assert KycCase.objects.get(pk=case.pk).status == "approved"


class TestFourEyes:
    def test_a_high_risk_case_needs_two_different_officers(
        self, analyst, officer, officer2
    ) -> None:
        case = _ready(analyst, risk="high")
        case = services.kyc_case_approve(case=case, actor=officer, reason="first look fine")
        assert case.status == "in_review"
        assert ApprovalRequest.objects.get().status == "pending"
        with pytest.raises(NotAllowed, match="You gave the first approval"):
            services.kyc_case_approve(case=case, actor=officer)
        assert KycCase.objects.get(pk=case.pk).status == "in_review"
        case = services.kyc_case_approve(case=case, actor=officer2, reason="agree")
        assert (case.status, case.decided_by) == ("approved", officer2)
        assert Merchant.objects.get(pk=case.merchant_id).status == "active"

    def test_the_preparer_cannot_give_the_final_approval(self, officer, officer2) -> None:
        case = _case(risk="high")
        services.kyc_case_take_next(actor=officer2)
        services.kyc_case_start_review(case=case, actor=officer2)  # officer2 prepares it
        _judge(case, officer2)
        services.kyc_case_approve(case=case, actor=officer)
        with pytest.raises(NotAllowed, match="You prepared this case"):
            services.kyc_case_approve(case=case, actor=officer2)
        assert KycCase.objects.get(pk=case.pk).status == "in_review"

    def test_a_first_approval_is_void_when_a_document_changes(
        self, analyst, officer, officer2
    ) -> None:
        case = _ready(analyst, risk="high")
        services.kyc_case_approve(case=case, actor=officer)
        services.kyc_document_upload(
            case=case, document_type="proof_of_address", upload=SimpleUploadedFile("addr.png", PNG)
        )
        assert ApprovalRequest.objects.get().status == "rejected"
        _judge(case, analyst)
        # officer2's approval now is a new first approval, not a final one.
        case = services.kyc_case_approve(case=case, actor=officer2)
        assert case.status == "in_review"
        assert ApprovalRequest.objects.filter(status="pending").get().requested_by == officer2

    def test_a_first_approval_is_void_when_a_beneficial_owner_changes(
        self, analyst, officer
    ) -> None:
        case = _ready(analyst, risk="high")
        services.kyc_case_approve(case=case, actor=officer)
        assert ApprovalRequest.objects.get().status == "pending"
        beneficial_owner_add(
            merchant=case.merchant,
            full_name="Late Owner",
            date_of_birth="1980-02-02",
            nationality="GB",
            residential_address="1 Late Lane",
            ownership_bp=5_000,
            actor=analyst,
        )
        assert ApprovalRequest.objects.get().status == "rejected"

    def test_a_screening_hit_makes_a_case_four_eyes(self, analyst, officer) -> None:
        case = _ready(analyst, name="Global Shadow Trading LLC")
        assert case.screening_hit and case.risk_level == "high"
        services.kyc_case_approve(case=case, actor=officer)
        assert KycCase.objects.get(pk=case.pk).status == "in_review"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_officers_approving_at_the_same_moment_record_one_approval() -> None:
    analyst = make_staff("an", roles.KYC_ANALYST)
    officers = [make_staff(f"off{n}", roles.COMPLIANCE_OFFICER) for n in range(3)]
    case = _ready(analyst, risk="high")
    services.kyc_case_approve(case=case, actor=officers[0])
    results = run_at_once(
        *[(lambda o=o: services.kyc_case_approve(case=case, actor=o)) for o in officers[1:]]
    )
    # The loser finds the request decided, or the case approved, whichever it reaches first.
    outcomes = sorted(type(r).__name__ for r in results)
    assert outcomes in (["ApprovalNotPending", "KycCase"], ["KycCase", "KycError"]), results
    assert not ApprovalRequest.objects.filter(status="pending").exists()
    case.refresh_from_db()
    assert case.status == "approved"
    merchant_updates = LogEntry.objects.filter(
        content_type__model="merchant",
        object_pk=str(case.merchant_id),
        action=LogEntry.Action.UPDATE,
    )
    assert merchant_updates.count() == 1  # activated once


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_analysts_taking_the_next_case_at_once_get_different_cases() -> None:
    analysts = [make_staff(f"a{n}", roles.KYC_ANALYST) for n in range(2)]
    cases = [_case(name=f"Shop {n} Ltd") for n in range(2)]
    results = run_at_once(*[(lambda a=a: services.kyc_case_take_next(actor=a)) for a in analysts])
    assert {r.pk for r in results} == {c.pk for c in cases}
    assert {KycCase.objects.get(pk=c.pk).assignee_id for c in cases} == {a.pk for a in analysts}


class TestDocuments:
    @pytest.mark.parametrize(
        ("name", "content", "reason"),
        [
            (
                "passport.pdf",
                b"MZ\x90\x00\x03 renamed windows executable",
                "Only PDF, PNG and JPEG",
            ),
            ("scan.jpg", b"#!/bin/sh\nrm -rf /\n", "Only PDF, PNG and JPEG"),
            ("huge.pdf", b"%PDF-" + b"0" * (10 * 1024 * 1024), "the limit is"),
        ],
    )
    def test_bad_uploads_are_refused_and_nothing_is_stored(self, name, content, reason) -> None:
        case = _case()
        count = KycDocument.objects.count()
        with pytest.raises(UploadRejected, match=reason):
            services.kyc_document_upload(
                case=case, document_type="passport", upload=SimpleUploadedFile(name, content)
            )
        assert KycDocument.objects.count() == count

    def test_a_path_traversal_name_never_reaches_the_disk(self, settings) -> None:
        case = _case()
        document = services.kyc_document_upload(
            case=case,
            document_type="passport",
            upload=SimpleUploadedFile("../../../../etc/passwd.pdf", PDF),
        )
        assert document.original_name == "passwd.pdf"
        assert ".." not in document.file.name and "passwd" not in document.file.name
        assert document.file.path.startswith(str(settings.PRIVATE_MEDIA_ROOT))
        import hashlib

        assert document.sha256 == hashlib.sha256(PDF).hexdigest()

    def test_asking_for_a_new_upload_sends_the_case_back(self, analyst) -> None:
        case = _in_review(analyst)
        document = case.documents.get()
        with pytest.raises(KycError):
            services.kyc_document_review(document=document, review_status="rejected", actor=analyst)
        services.kyc_document_review(
            document=document, review_status="reupload_requested", reason="expired", actor=analyst
        )
        case.refresh_from_db()
        assert case.status == "needs_information"
        assert "expired" in case.information_request


class TestScreening:
    @pytest.mark.parametrize(
        "name",
        [
            "Viktor Bout",
            "Victor Bout",
            "viktor  BOUT",
            "Global Shadow Trading Ltd",
            "Omar Alrashid",
            "Nordwind Shipping",
        ],
    )
    def test_near_matches_are_found(self, name) -> None:
        assert OfflineListProvider().screen([name])

    @pytest.mark.parametrize(
        "name",
        ["Acme Widgets Ltd", "Jane Smith", "Victoria Booth", "Global Trading Ltd", "Omar Khayyam"],
    )
    def test_unrelated_names_are_not(self, name) -> None:
        assert OfflineListProvider().screen([name]) == []

    def test_results_are_stored_per_case_and_raise_the_risk(self) -> None:
        case = _case(name="Nordwind Shipping GmbH")
        result = ScreeningResult.objects.get(case=case)
        assert result.category == "sanctions" and result.score == 100
        case.refresh_from_db()
        assert case.risk_level == "high" and case.screening_hit
        assert any(f["name"] == "screening" for f in case.risk_factors)
        services.kyc_case_screen(case=case)  # again: nothing new
        assert ScreeningResult.objects.filter(case=case).count() == 1


def test_risk_factors_are_transparent() -> None:
    case = _case(name="Lucky Spin Casino Ltd", country="CY", business_type="gambling")
    factors = {f["name"]: f["points"] for f in case.risk_factors}
    assert factors == {"country": 15, "business type": 25}
    assert case.risk_score == 40 and case.risk_level == "medium"


def test_sla_notifies_marks_overdue_and_escalates(analyst, mailoutbox) -> None:
    from django.db import transaction

    soon, late, very_late = _case(name="A Ltd"), _case(name="B Ltd"), _case(name="C Ltd")
    now = timezone.now()
    for case, due in (
        (soon, now + datetime.timedelta(hours=3)),
        (late, now - datetime.timedelta(hours=1)),
        (very_late, now - datetime.timedelta(hours=30)),
    ):
        with transaction.atomic():
            case.due_at, case.assignee = due, analyst
            case.save()
    summary = services.kyc_sla_sweep(now=now)
    assert summary == {"notified": 1, "overdue": 2, "escalated": 1}
    assert mailoutbox[0].to == [analyst.email] and soon.reference in mailoutbox[0].subject
    assert KycCase.objects.get(pk=late.pk).overdue_since is not None
    assert KycCase.objects.get(pk=very_late.pk).status == "escalated"
    assert services.kyc_sla_sweep(now=now)["notified"] == 0


def test_a_later_adverse_finding_suspends_an_active_merchant(officer) -> None:
    merchant = MerchantFactory(status="active")
    with pytest.raises(KycError):
        services.merchant_suspend_for_finding(merchant=merchant, reason="", actor=officer)
    services.merchant_suspend_for_finding(
        merchant=merchant, reason="adverse media: fraud", actor=officer
    )
    merchant.refresh_from_db()
    assert merchant.status == "suspended" and "adverse media" in merchant.flag_reason


def test_submitting_twice_is_refused_and_keeps_the_due_date() -> None:
    case = _case()
    due = case.due_at
    with pytest.raises(InvalidTransition, match="from 'submitted' to 'submitted'"):
        services.kyc_case_submit(case=case)
    assert KycCase.objects.get(pk=case.pk).due_at == due
