"""Issue #10, points 1 and 7: one rule, every path; least data.

Each bypass is first tried the way an insider would (console action, console form, API,
service, screen), then shown refused, with nothing written.
"""

from __future__ import annotations

from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audits import roles
from audits.models import PaymentAudit
from kyc import services as kyc_services
from kyc.models import KycCase, ScreeningResult
from payments.core import approvals
from payments.exceptions import MerchantStatusRefused
from payments.models import ApprovalRequest, Merchant, Refund
from payments.services.merchants import merchant_activate_after_kyc, merchant_set_status
from payments.services.refunds import REFUND_APPROVAL
from tests.api.conftest import client_for, issue
from tests.conftest import make_staff
from tests.kyc.factories import CaseNoteFactory, KycCaseFactory, KycDocumentFactory
from tests.payments.factories import CapturedPaymentFactory, MerchantFactory

pytestmark = pytest.mark.django_db


def _written() -> tuple[int, int, int, int]:
    """Rows in both audit trails and in the tables a bypass would write to. Signing in (the
    test client's login) is on the security trail too, with the new device and any unusual
    sign-in it makes, and is not what a bypass writes."""
    return (
        PaymentAudit.objects.exclude(
            action_type__in=[
                "security.signin",
                "security.signout",
                "security.device_new",
                "security.staff_unusual",
            ]
        ).count(),
        LogEntry.objects.count(),
        Refund.objects.count(),
        ApprovalRequest.objects.exclude(status=ApprovalRequest.Status.PENDING).count(),
    )


def _pending() -> Merchant:
    return MerchantFactory(status=Merchant.Status.PENDING)


def _status(merchant: Merchant) -> str:
    return Merchant.objects.get(pk=merchant.pk).status


@pytest.fixture
def superuser(db: None) -> Any:
    return make_staff("root", is_superuser=True)


# --- 1. A merchant becomes active only through an approved KYC case ---------------------------


def test_the_service_refuses_to_activate_a_pending_merchant(officer, superuser) -> None:
    merchant = _pending()
    before = _written()
    for actor in (officer, superuser, None):
        with pytest.raises(MerchantStatusRefused, match="KYC case is approved"):
            merchant_set_status(
                merchant=merchant, status=Merchant.Status.ACTIVE, reason="trust me", actor=actor
            )
    assert _status(merchant) == "pending" and _written() == before


def _decided_case(status: str, decision: str, by: Any, **extra: Any) -> KycCase:
    """A case `by` decided just now."""
    return KycCaseFactory(
        status=status, decision=decision, decided_by=by, decided_at=timezone.now(), **extra
    )


def test_activation_needs_an_approved_case_of_that_very_merchant(officer) -> None:
    merchant = _pending()
    open_case = KycCaseFactory(merchant=merchant, status=KycCase.Status.IN_REVIEW)
    others = _decided_case(
        KycCase.Status.APPROVED, KycCase.Decision.APPROVE, officer, merchant__status="active"
    )
    not_a_case = CapturedPaymentFactory(merchant=merchant)
    before = _written()
    for proof in (open_case, others, not_a_case, merchant):
        with pytest.raises(MerchantStatusRefused):
            merchant_activate_after_kyc(merchant=merchant, approved_case=proof, actor=officer)
    # A case object altered in memory is no proof: the service reads it again.
    open_case.status = KycCase.Status.APPROVED
    with pytest.raises(MerchantStatusRefused):
        merchant_activate_after_kyc(merchant=merchant, approved_case=open_case, actor=officer)
    assert _status(merchant) == "pending" and _written() == before


def test_approving_the_kyc_case_activates_the_merchant(analyst, officer) -> None:
    merchant = _pending()
    case = KycCaseFactory(merchant=merchant, status=KycCase.Status.SUBMITTED, assignee=analyst)
    kyc_services.kyc_case_start_review(case=case, actor=analyst)
    KycDocumentFactory(case=case, review_status="accepted")  # reviewed before any approval
    kyc_services.kyc_case_approve(case=case, actor=officer, reason="all documents in order")
    assert _status(merchant) == "active"


def test_the_console_action_cannot_activate_a_pending_merchant(client, officer, superuser) -> None:
    merchant = _pending()
    before = _written()
    for user in (officer, superuser):
        client.force_login(user)
        response = client.post(
            reverse("admin:payments_merchant_changelist"),
            {"action": "reactivate", "_selected_action": [merchant.pk], "reason": "trust me"},
            follow=True,
        )
        assert response.status_code == 200
        assert "becomes active only when its KYC case is approved" in response.content.decode()
    assert _status(merchant) == "pending" and _written() == before


def test_the_old_activate_action_is_gone(client, superuser) -> None:
    merchant = _pending()
    client.force_login(superuser)
    client.post(
        reverse("admin:payments_merchant_changelist"),
        {"action": "activate", "_selected_action": [merchant.pk]},
    )
    assert _status(merchant) == "pending"


def _merchant_form(merchant: Merchant, **changes: str) -> dict[str, str]:
    data = {
        "legal_name": merchant.legal_name,
        "trading_name": merchant.trading_name,
        "country": merchant.country,
        "business_type": merchant.business_type,
        "risk_level": merchant.risk_level,
        "contact_name": merchant.contact_name,
        "contact_email": merchant.contact_email,
        "contact_phone": merchant.contact_phone,
        "status": "active",
        "flagged_for_review": "",
        "flag_reason": "",
    }
    data.update(changes)
    return data


def test_the_console_change_and_add_forms_cannot_set_the_status(client, superuser) -> None:
    merchant = _pending()
    client.force_login(superuser)
    response = client.post(
        reverse("admin:payments_merchant_change", args=[merchant.pk]),
        _merchant_form(merchant, contact_name="New Contact"),
    )
    assert response.status_code == 302
    changed = Merchant.objects.get(pk=merchant.pk)
    assert (changed.status, changed.contact_name) == ("pending", "New Contact")
    assert not PaymentAudit.objects.filter(
        object_type="payments.merchant", after_state__status="active"
    ).exists()
    response = client.post(
        reverse("admin:payments_merchant_add"),
        _merchant_form(merchant, legal_name="Brand New Ltd", contact_email="new@example.com"),
    )
    assert response.status_code == 302
    assert Merchant.objects.get(legal_name="Brand New Ltd").status == "pending"


def test_the_api_patch_refuses_a_status(administrator) -> None:
    merchant = _pending()
    raw = issue(administrator, ["merchants:write", "merchants:read"])
    before = _written()
    response = client_for(raw).patch(
        f"/api/v1/merchants/{merchant.pk}/", {"status": "active"}, format="json"
    )
    assert response.status_code == 400
    assert "status" in response.json()["errors"]
    assert _status(merchant) == "pending" and _written()[:3] == before[:3]


def test_suspension_keeps_its_reason_and_needs_one(client, officer) -> None:
    merchant = MerchantFactory(status=Merchant.Status.ACTIVE)
    before = _written()
    with pytest.raises(MerchantStatusRefused, match="reason"):
        merchant_set_status(merchant=merchant, status="suspended", actor=officer)
    client.force_login(officer)
    client.post(
        reverse("admin:payments_merchant_changelist"),
        {"action": "suspend", "_selected_action": [merchant.pk], "reason": "  "},
    )
    assert _status(merchant) == "active" and _written() == before
    client.post(
        reverse("admin:payments_merchant_changelist"),
        {"action": "suspend", "_selected_action": [merchant.pk], "reason": "card testing seen"},
    )
    suspended = Merchant.objects.get(pk=merchant.pk)
    assert suspended.status == "suspended"
    assert suspended.flagged_for_review and suspended.flag_reason == "suspended: card testing seen"


def test_reactivation_needs_a_reason_and_the_permission(ops, officer) -> None:
    merchant = MerchantFactory(status=Merchant.Status.SUSPENDED)
    before = _written()
    with pytest.raises(MerchantStatusRefused, match=r"payments\.change_merchant"):
        merchant_set_status(merchant=merchant, status="active", reason="looks fine", actor=ops)
    with pytest.raises(MerchantStatusRefused, match=r"payments\.change_merchant"):
        merchant_set_status(merchant=merchant, status="active", reason="looks fine")
    with pytest.raises(MerchantStatusRefused, match="reason"):
        merchant_set_status(merchant=merchant, status="active", actor=officer)
    assert _status(merchant) == "suspended" and _written() == before
    merchant_set_status(
        merchant=merchant, status="active", reason="chargebacks explained", actor=officer
    )
    back = Merchant.objects.get(pk=merchant.pk)
    assert back.status == "active" and back.flag_reason == "re-activated: chargebacks explained"


# --- 2. Workflow fields are never editable in the console -------------------------------------


WORKFLOW_FIELDS = [
    "assignee",
    "prepared_by",
    "due_at",
    "sla_paused_at",
    "screening_hit",
    "decision",
    "decided_by",
    "status",
    "risk_level",
]


def test_console_edits_of_workflow_fields_change_nothing(client, analyst, officer, superuser):
    case = KycCaseFactory(status=KycCase.Status.IN_REVIEW, assignee=analyst, prepared_by=analyst)
    snapshot = KycCase.objects.filter(pk=case.pk).values(*WORKFLOW_FIELDS).get()
    forged = {
        "assignee": officer.pk,
        "prepared_by": officer.pk,
        "due_at_0": "2030-01-01",
        "due_at_1": "00:00:00",
        "sla_paused_at_0": "2030-01-01",
        "sla_paused_at_1": "00:00:00",
        "screening_hit": "",
        "decision": "approve",
        "decided_by": officer.pk,
        "status": "approved",
        "risk_level": "low",
        "_save": "Save",
    }
    before = _written()
    for user in (analyst, officer, superuser):
        client.force_login(user)
        url = reverse("admin:kyc_kyccase_change", args=[case.pk])
        page = client.get(url)
        assert page.status_code == 200
        assert 'name="prepared_by"' not in page.content.decode()
        assert 'name="_save"' not in page.content.decode()
        assert client.post(url, forged).status_code == 403
    assert KycCase.objects.filter(pk=case.pk).values(*WORKFLOW_FIELDS).get() == snapshot
    assert _written() == before


# --- 3. Approving and rejecting need the permission to approve that kind -----------------------


@pytest.fixture
def refund_request(ops) -> ApprovalRequest:
    payment = CapturedPaymentFactory()
    return approvals.approval_request(
        action=REFUND_APPROVAL,
        target=payment,
        actor=ops,
        payload={"payment_id": payment.pk, "amount": 5_000, "reason": "duplicate"},
        reason="large refund",
    )


def _still_pending(request: ApprovalRequest) -> bool:
    return ApprovalRequest.objects.get(pk=request.pk).status == ApprovalRequest.Status.PENDING


def test_read_only_roles_cannot_reject_in_the_service(refund_request, auditor, analyst) -> None:
    before = _written()
    for user in (auditor, analyst):
        with pytest.raises(approvals.ApproverLacksPermission, match=r"payments\.approve_refund"):
            approvals.approval_reject(request=refund_request, actor=user, note="no")
        with pytest.raises(approvals.ApproverLacksPermission):
            approvals.approval_approve(request=refund_request, actor=user, note="yes")
    assert _still_pending(refund_request) and _written() == before


def test_a_holder_of_the_permission_may_reject(refund_request) -> None:
    checker = make_staff("ops2", roles.PAYMENTS_OPERATIONS)
    approvals.approval_reject(request=refund_request, actor=checker, note="customer withdrew")
    assert ApprovalRequest.objects.get(pk=refund_request.pk).status == "rejected"


def test_read_only_roles_cannot_reject_on_the_screen(client, refund_request, auditor) -> None:
    client.force_login(auditor)
    before = _written()
    response = client.post(
        reverse("payments:approval-decide", args=[refund_request.pk]),
        {"decision": "reject", "note": "I say no"},
        follow=True,
    )
    assert response.status_code == 200
    assert "Rejecting this needs the permission" in response.content.decode()
    assert _still_pending(refund_request) and _written() == before


def test_read_only_roles_get_no_approve_action_in_the_console(
    client, refund_request, auditor
) -> None:
    client.force_login(auditor)
    url = reverse("admin:payments_approvalrequest_changelist")
    assert 'value="approve"' not in client.get(url).content.decode()
    before = _written()
    client.post(url, {"action": "approve", "_selected_action": [refund_request.pk]})
    assert _still_pending(refund_request) and _written() == before


# --- 4. A merchant-bound token does no more than its owner's role allows -----------------------


def test_an_auditor_owned_merchant_token_cannot_refund(auditor) -> None:
    payment = CapturedPaymentFactory()
    raw = issue(auditor, ["payments:read", "payments:write"], merchant=payment.merchant)
    before = _written()
    response = client_for(raw).post(
        f"/api/v1/payments/{payment.pk}/refunds/",
        {"amount": 1_000, "reason": "requested_by_customer"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="auditor-refund-1",
    )
    assert response.status_code == 403
    assert "payments:write" in response.json()["message"]
    assert not Refund.objects.filter(payment=payment).exists()
    assert _written()[:3] == before[:3]
    # Reading is within an Auditor's role.
    assert client_for(raw).get(f"/api/v1/payments/{payment.pk}/").status_code == 200


def test_a_token_loses_what_its_owner_loses(ops) -> None:
    payment = CapturedPaymentFactory()
    raw = issue(ops, ["payments:write"], merchant=payment.merchant)
    ops.groups.clear()
    ops.groups.add(make_auditor_group())
    response = client_for(raw).post(
        f"/api/v1/payments/{payment.pk}/refunds/",
        {"amount": 1_000, "reason": "requested_by_customer"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="ops-refund-1",
    )
    assert response.status_code == 403 and not Refund.objects.exists()


def test_refunding_needs_add_refund_besides_the_scope_permission() -> None:
    payment = CapturedPaymentFactory()
    changer = make_staff("changer")
    changer.user_permissions.add(
        Permission.objects.get(codename="change_payment", content_type__app_label="payments")
    )
    raw = issue(changer, ["payments:write"], merchant=payment.merchant)
    response = client_for(raw).post(
        f"/api/v1/payments/{payment.pk}/refunds/",
        {"amount": 1_000, "reason": "requested_by_customer"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="changer-refund-1",
    )
    assert response.status_code == 403 and "payments.add_refund" in response.json()["message"]
    assert not Refund.objects.exists()


def make_auditor_group() -> Any:
    from django.contrib.auth.models import Group

    return Group.objects.get(name=roles.AUDITOR)


# --- 5. Least data: payments operations see a KYC case's outcome only --------------------------

SECRETS = [
    "Note: director is a cousin of the PEP",
    "Sanctioned Person Matched",
    "secret-risk-detail",
    "secret-decision-reason",
    "secret-escalation-reason",
]


@pytest.fixture
def detailed_case(analyst) -> KycCase:
    case = _decided_case(
        KycCase.Status.REJECTED,
        KycCase.Decision.REJECT,
        analyst,
        decision_reason="secret-decision-reason",
        escalation_reason="secret-escalation-reason",
        risk_factors=[{"name": "pep", "detail": "secret-risk-detail", "points": 40}],
        risk_score=40,
        screening_hit=True,
    )
    CaseNoteFactory(case=case, author=analyst, text=SECRETS[0])
    with transaction.atomic():
        ScreeningResult.objects.create(
            case=case,
            provider="offline",
            screened_name=case.merchant.legal_name,
            matched_name=SECRETS[1],
            list_name="OFAC SDN",
            category="sanctions",
            score=97,
        )
    return case


def _pages(client: Any, case: KycCase) -> dict[str, str]:
    urls = {
        "case": reverse("kyc:case", args=[case.pk]),
        "merchant": reverse("kyc:merchant", args=[case.merchant_id]),
        "console case": reverse("admin:kyc_kyccase_change", args=[case.pk]),
        "console list": reverse("admin:kyc_kyccase_changelist"),
    }
    pages = {}
    for name, url in urls.items():
        response = client.get(url)
        assert response.status_code == 200, name
        pages[name] = response.content.decode()
    return pages


def test_payments_operations_see_the_outcome_only(client, ops, detailed_case) -> None:
    client.force_login(ops)
    pages = _pages(client, detailed_case)
    for name, page in pages.items():
        for secret in SECRETS:
            assert secret not in page, (name, secret)
    assert "Rejected" in pages["case"] and "Rejected" in pages["merchant"]
    assert "Risk factors" not in pages["case"] and "Screening" not in pages["case"]
    history = reverse("admin:kyc_kyccase_auditlog", args=[detailed_case.pk])
    assert client.get(history).status_code == 403
    # The queue neither shows the risk nor lets it be read by filtering on it.
    for risk in ("high", "low"):
        queue = client.get(reverse("kyc:queue"), {"tab": "all", "risk": risk}).content.decode()
        assert detailed_case.reference in queue and '<th scope="col">Risk</th>' not in queue


def test_compliance_and_auditors_still_see_the_details(client, auditor, detailed_case) -> None:
    client.force_login(auditor)
    pages = _pages(client, detailed_case)
    for secret in SECRETS:
        assert secret in pages["case"], secret
    assert "secret-risk-detail" in pages["console case"]


# --- 7. The API schema and docs are not public outside DEBUG ------------------------------------


@pytest.mark.parametrize("url", ["/api/schema/?format=json", "/api/docs/"])
def test_the_api_schema_and_docs_need_staff_or_a_token(client, url, settings, ops) -> None:
    settings.DEBUG = False
    assert client.get(url).status_code in (401, 403)
    customer = make_staff("customer")
    customer.is_staff = False
    with transaction.atomic():
        customer.save()
    client.force_login(customer)
    assert client.get(url).status_code == 403
    client.force_login(ops)
    assert client.get(url).status_code == 200
    client.logout()
    integration = User.objects.create_user("integration")
    raw = issue(integration, ["payments:read"], merchant=MerchantFactory())
    assert client_for(raw).get(url).status_code == 200
    settings.DEBUG = True
    assert client.get(url).status_code == 200
