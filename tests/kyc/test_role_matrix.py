"""Every workflow step for every role: allowed steps succeed and are audited with the actor;
refused ones raise and leave the case and the trail as they were."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.db import transaction

from audits import roles
from kyc import services
from kyc.exceptions import NotAllowed
from kyc.models import KycCase
from tests.conftest import make_staff
from tests.kyc.factories import KycDocumentFactory, ScreeningResultFactory
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

ROLES = [
    roles.KYC_ANALYST,
    roles.COMPLIANCE_OFFICER,
    roles.PAYMENTS_OPERATIONS,
    roles.AUDITOR,
    roles.ADMINISTRATOR,
]
WORKERS = {roles.KYC_ANALYST, roles.COMPLIANCE_OFFICER, roles.ADMINISTRATOR}
DECIDERS = {roles.COMPLIANCE_OFFICER, roles.ADMINISTRATOR}


def _case(status: str, assignee: Any = None) -> KycCase:
    """A case ready for a decision but for what the step itself judges: its document accepted."""
    merchant = MerchantFactory(status="pending", risk_level="low")
    with transaction.atomic():
        case = KycCase.objects.create(
            merchant=merchant, kind="kyb", status=status, risk_level="low", assignee=assignee
        )
    KycDocumentFactory(case=case, review_status="accepted")
    return case


STEPS: dict[str, tuple[str, bool, set[str], Callable[[KycCase, Any], Any]]] = {
    # name: (starting status, assigned to the actor?, roles allowed, the call)
    "take next": ("submitted", False, WORKERS, lambda c, u: services.kyc_case_take_next(actor=u)),
    "start review": (
        "submitted",
        True,
        WORKERS,
        lambda c, u: services.kyc_case_start_review(case=c, actor=u),
    ),
    "request information": (
        "in_review",
        True,
        WORKERS,
        lambda c, u: services.kyc_case_request_information(
            case=c, actor=u, message="bank statement"
        ),
    ),
    "escalate": (
        "in_review",
        True,
        WORKERS,
        lambda c, u: services.kyc_case_escalate(case=c, actor=u, reason="complex"),
    ),
    "approve": (
        "in_review",
        False,
        DECIDERS,
        lambda c, u: services.kyc_case_approve(case=c, actor=u),
    ),
    "reject": (
        "escalated",
        False,
        DECIDERS,
        lambda c, u: services.kyc_case_reject(
            case=c, actor=u, reason_code="no_response", reason_text=""
        ),
    ),
    "reassign": (
        "submitted",
        False,
        DECIDERS,
        lambda c, u: services.kyc_case_assign(
            case=c, actor=u, assignee=make_staff(f"to-{c.pk}", roles.KYC_ANALYST)
        ),
    ),
    "dispose of a screening hit": (
        "in_review",
        True,
        WORKERS,
        lambda c, u: services.screening_result_dispose(
            result=c.screening_results.get(),
            disposition="false_positive",
            reason="different date of birth",
            actor=u,
        ),
    ),
    "add note": (
        "in_review",
        False,
        WORKERS,
        lambda c, u: services.kyc_case_add_note(case=c, actor=u, text="checked"),
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("step", list(STEPS))
def test_each_step_for_each_role(step: str, role: str) -> None:
    status, assigned, allowed_roles, call = STEPS[step]
    person = make_staff(f"user-{abs(hash((step, role))) % 10**6}", role)
    case = _case(status, assignee=person if assigned else None)
    if step == "dispose of a screening hit":
        ScreeningResultFactory(case=case)
    before = KycCase.objects.filter(pk=case.pk).values().get()
    entries = LogEntry.objects.count()

    if role in allowed_roles:
        call(case, person)
        new = LogEntry.objects.filter(pk__gt=0).order_by("-pk")[
            : LogEntry.objects.count() - entries
        ]
        assert new, "an allowed step is audited"
        assert all(e.actor_id == person.pk for e in new)
        return
    with pytest.raises(NotAllowed):
        call(case, person)
    assert KycCase.objects.filter(pk=case.pk).values().get() == before
    assert not case.screening_results.exclude(disposition="pending").exists()
    assert LogEntry.objects.count() == entries
