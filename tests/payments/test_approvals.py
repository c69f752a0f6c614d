"""Maker-checker on money: large refunds and accepting chargebacks need a second person."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from audits.models import PaymentAudit
from payments.core import approvals
from payments.core.approvals import (
    ApprovalNotPending,
    ApproverLacksPermission,
    SelfApprovalRefused,
)
from payments.exceptions import RefundExceedsCaptured
from payments.models import ApprovalRequest, Chargeback, Payment, Refund
from payments.services.disputes import chargeback_accept_request
from payments.services.refunds import refund_request
from tests.conftest import make_staff, run_at_once
from tests.payments.factories import CapturedPaymentFactory, ChargebackFactory
from tests.payments.helpers import gateway_payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops2(db):
    from audits import roles

    return make_staff("ops2", roles.PAYMENTS_OPERATIONS)


@pytest.fixture
def captured(local_stripe, settings):
    settings.REFUND_APPROVAL_THRESHOLD = 50_000
    return gateway_payment(amount=200_000)


def test_a_small_refund_is_executed_at_once(captured, ops, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_request(
            payment=captured, amount=10_000, reason="duplicate", actor=ops
        ).refund
    refund.refresh_from_db()
    assert isinstance(refund, Refund)
    assert (refund.status, refund.requested_by_id) == ("succeeded", ops.pk)
    assert refund.gateway_reference.startswith("re_")
    assert not ApprovalRequest.objects.exists()


def test_a_large_refund_waits_for_a_second_person(
    captured, ops, ops2, analyst, django_capture_on_commit_callbacks
) -> None:
    request = refund_request(
        payment=captured,
        amount=150_000,
        reason="duplicate",
        reason_detail="charged twice",
        actor=ops,
    ).approval
    assert isinstance(request, ApprovalRequest) and request.status == "pending"
    assert not Refund.objects.exists()

    with pytest.raises(SelfApprovalRefused):
        approvals.approval_approve(request=request, actor=ops)
    with pytest.raises(ApproverLacksPermission, match=r"payments\.approve_refund"):
        approvals.approval_approve(request=request, actor=analyst)
    assert ApprovalRequest.objects.get().status == "pending"
    assert not Refund.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        refund = approvals.approval_approve(request=request, actor=ops2, note="checked")
    refund.refresh_from_db()
    assert (refund.amount, refund.status, refund.requested_by_id) == (150_000, "succeeded", ops.pk)
    request.refresh_from_db()
    assert (request.status, request.decided_by_id) == ("approved", ops2.pk)
    with pytest.raises(ApprovalNotPending, match="already approved"):
        approvals.approval_approve(request=request, actor=ops2)
    assert Refund.objects.count() == 1
    row = PaymentAudit.objects.filter(object_type="payments.refund").order_by("created_at")[0]
    assert row.user_id == ops2.pk  # the approver executed it


def test_a_request_that_could_never_execute_is_refused_at_once(captured, ops) -> None:
    with pytest.raises(RefundExceedsCaptured):
        refund_request(payment=captured, amount=250_000, reason="duplicate", actor=ops)
    assert not ApprovalRequest.objects.exists()


def test_the_database_refuses_an_approval_by_the_requester(ops) -> None:
    from django.db import IntegrityError, transaction

    request = approvals.approval_request(
        action="refund", target=CapturedPaymentFactory(), actor=ops, payload={"amount": 1}
    )
    request.status, request.decided_by = "approved", ops
    with pytest.raises(IntegrityError), transaction.atomic():
        request.save()


def test_an_expired_request_cannot_be_approved(captured, ops, ops2) -> None:
    request = refund_request(
        payment=captured, amount=60_000, reason="duplicate", actor=ops
    ).approval
    from django.db import transaction

    with transaction.atomic():
        request.expires_at = timezone.now() - datetime.timedelta(seconds=1)
        request.save()
    with pytest.raises(ApprovalNotPending, match="already expired"):
        approvals.approval_approve(request=request, actor=ops2)
    assert ApprovalRequest.objects.get().status == "expired"
    assert not Refund.objects.exists()


def _due_request(ops) -> ApprovalRequest:
    """A pending refund request whose time ran out a second ago."""
    return approvals.approval_request(
        action="refund",
        target=CapturedPaymentFactory(),
        actor=ops,
        payload={"amount": 1},
        ttl=datetime.timedelta(seconds=-1),
    )


def test_due_requests_expire_in_the_periodic_task(ops) -> None:
    request = _due_request(ops)
    assert approvals.approvals_expire_due() == 1
    request.refresh_from_db()
    assert request.status == "expired"


def test_the_beat_task_itself_expires_due_requests(ops) -> None:
    # The task imports the engine lazily: run the task, not only the function it calls.
    from payments.tasks import approvals_expire

    request = _due_request(ops)
    assert approvals_expire.apply().get() == 1
    request.refresh_from_db()
    assert request.status == "expired"


def test_rejection_needs_a_reason_and_ends_the_request(captured, ops, ops2) -> None:
    request = refund_request(
        payment=captured, amount=60_000, reason="duplicate", actor=ops
    ).approval
    with pytest.raises(approvals.ApprovalError, match="Say why"):
        approvals.approval_reject(request=request, actor=ops2, note=" ")
    approvals.approval_reject(request=request, actor=ops2, note="customer kept the goods")
    with pytest.raises(ApprovalNotPending):
        approvals.approval_approve(request=request, actor=ops2)
    assert not Refund.objects.exists()


def test_one_pending_request_per_target(captured, ops) -> None:
    refund_request(payment=captured, amount=60_000, reason="duplicate", actor=ops)
    with pytest.raises(approvals.ApprovalAlreadyPending):
        refund_request(payment=captured, amount=70_000, reason="duplicate", actor=ops)


def test_accepting_a_chargeback_needs_a_second_person(local_braintree, ops, ops2) -> None:
    payment = CapturedPaymentFactory(gateway="braintree", gateway_reference="bt_cb")
    chargeback = ChargebackFactory(
        payment=payment, gateway="braintree", gateway_reference="dp_bt_1"
    )
    request = chargeback_accept_request(
        chargeback=chargeback, reason="not worth fighting", actor=ops
    )
    with pytest.raises(SelfApprovalRefused):
        approvals.approval_approve(request=request, actor=ops)
    assert Chargeback.objects.get().status == "needs_response"
    assert local_braintree.dispute_calls == []
    approvals.approval_approve(request=request, actor=ops2)
    assert Chargeback.objects.get().status == "accepted"
    assert local_braintree.dispute_calls == [("dp_bt_1", "accept", "")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_approvals_at_the_same_moment_refund_once(local_stripe, settings) -> None:
    from audits import roles

    settings.REFUND_APPROVAL_THRESHOLD = 50_000
    maker = make_staff("maker", roles.PAYMENTS_OPERATIONS)
    checkers = [make_staff(f"checker{n}", roles.PAYMENTS_OPERATIONS) for n in range(2)]
    payment = gateway_payment(amount=200_000)
    request = refund_request(
        payment=payment, amount=150_000, reason="duplicate", actor=maker
    ).approval
    results = run_at_once(
        *[(lambda c=c: approvals.approval_approve(request=request, actor=c)) for c in checkers]
    )
    assert sorted(type(r).__name__ for r in results) == ["ApprovalNotPending", "Refund"]
    assert Refund.objects.count() == 1
    payment.refresh_from_db()
    assert payment.refunded_amount == 150_000
    assert Payment.objects.get(pk=payment.pk).status == "partially_refunded"
