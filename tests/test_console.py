"""The staff console: every model is there, lists cost the same queries at any size, roles
decide who sees what."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib import admin
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audits.models import AuditChainHead, PaymentAudit
from kyc.models import CaseNote, KycCase, KycDocument
from payments.models import (
    ApprovalRequest,
    Chargeback,
    ChargebackEvidence,
    EvidenceFile,
    Merchant,
    Payment,
    Refund,
    WebhookEvent,
)
from tests.kyc.factories import CaseNoteFactory, KycDocumentFactory
from tests.payments.factories import ChargebackFactory, RefundFactory

pytestmark = pytest.mark.django_db

CONSOLE_MODELS = [
    ChargebackEvidence,
    EvidenceFile,
    Merchant,
    Payment,
    Refund,
    Chargeback,
    WebhookEvent,
    ApprovalRequest,
    KycCase,
    KycDocument,
    CaseNote,
    PaymentAudit,
    AuditChainHead,
    LogEntry,
]


def _make_rows(n: int) -> None:
    for i in range(n):
        RefundFactory()
        ChargebackFactory()
        KycDocumentFactory()
        CaseNoteFactory()
        with transaction.atomic():
            WebhookEvent.objects.create(
                provider="stripe", event_id=f"evt_{n}_{i}", event_type="charge.refunded", payload={}
            )


def _changelist_queries(client, model) -> int:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


def test_every_domain_model_is_in_the_console() -> None:
    for model in CONSOLE_MODELS:
        assert admin.site.is_registered(model), model


@pytest.mark.parametrize("model", CONSOLE_MODELS, ids=lambda m: m.__name__)
def test_changelist_queries_do_not_grow_with_rows(
    admin_client, model, django_assert_max_num_queries
) -> None:
    _make_rows(1)
    few = _changelist_queries(admin_client, model)
    _make_rows(12)
    # session, user, count, rows (+ joins): the same whatever the row count.
    with django_assert_max_num_queries(few):
        _changelist_queries(admin_client, model)
    assert few <= 10


@pytest.mark.parametrize(
    "model", [Merchant, Payment, Refund, Chargeback, KycCase], ids=lambda m: m.__name__
)
def test_change_page_shows_the_audit_trail(admin_client, model) -> None:
    _make_rows(1)
    obj = model.objects.first()
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
    page = admin_client.get(url).content.decode()
    assert "Audit trail" in page
    assert "Full change log" in page
    history = reverse(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_auditlog", args=[obj.pk]
    )
    assert admin_client.get(history).status_code == 200


def test_search_finds_payments_by_gateway_reference_and_email(admin_client) -> None:
    refund = RefundFactory()
    payment = refund.payment
    url = reverse("admin:payments_payment_changelist")
    for term in (payment.gateway_reference, payment.customer_email):
        page = admin_client.get(url, {"q": term}).content.decode()
        assert payment.gateway_reference in page


def test_audit_rows_are_read_only_in_the_console(admin_client) -> None:
    RefundFactory()
    row = PaymentAudit.objects.first()
    url = reverse("admin:audits_paymentaudit_change", args=[row.pk])
    assert admin_client.post(url, {"action_type": "edited"}).status_code == 403
    delete = reverse("admin:audits_paymentaudit_delete", args=[row.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    entry = LogEntry.objects.first()
    assert (
        admin_client.post(
            reverse("admin:auditlog_logentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    changelist = admin_client.get(reverse("admin:audits_paymentaudit_changelist"))
    assert "delete_selected" not in changelist.content.decode()
    assert PaymentAudit.objects.filter(pk=row.pk, action_type=row.action_type).exists()


def test_an_audit_row_s_link_carries_its_created_at_and_the_lookup_uses_it(admin_client) -> None:
    RefundFactory()
    row = PaymentAudit.objects.order_by("created_at").first()
    changelist = admin_client.get(reverse("admin:audits_paymentaudit_changelist")).content.decode()
    assert "?created_at=" in changelist
    url = reverse("admin:audits_paymentaudit_change", args=[row.pk])
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(url, {"created_at": row.created_at.isoformat()})
    assert page.status_code == 200 and row.action_type in page.content.decode()
    lookups = [q["sql"] for q in queries if 'FROM "payment_audits"' in q["sql"]]
    assert lookups and '"payment_audits"."created_at" =' in lookups[0], lookups
    # A link without it, with another moment or with none at all still finds the row by id.
    for created_at in ("", "2001-01-01T00:00:00+00:00", "not-a-date", "2026-13-45T00:00"):
        page = admin_client.get(url, {"created_at": created_at} if created_at else {})
        assert page.status_code == 200 and row.action_type in page.content.decode(), created_at


class TestRoles:
    def test_auditor_reads_everything_and_changes_nothing(self, client, auditor) -> None:
        RefundFactory()
        KycDocumentFactory()
        client.force_login(auditor)
        for model in CONSOLE_MODELS:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
            assert client.get(url).status_code == 200, model
        merchant = Merchant.objects.first()
        url = reverse("admin:payments_merchant_change", args=[merchant.pk])
        client.post(url, {"legal_name": "Changed"})
        assert Merchant.objects.get(pk=merchant.pk).legal_name == merchant.legal_name

    def test_payments_operations_see_case_outcomes_but_not_documents(self, client, ops) -> None:
        KycDocumentFactory()
        client.force_login(ops)
        assert client.get(reverse("admin:kyc_kyccase_changelist")).status_code == 200
        assert client.get(reverse("admin:kyc_kycdocument_changelist")).status_code == 403
        case = KycCase.objects.first()
        page = client.get(reverse("admin:kyc_kyccase_change", args=[case.pk])).content.decode()
        assert "sha256" not in page.lower()

    def test_kyc_analyst_cannot_see_payments(self, client, analyst) -> None:
        client.force_login(analyst)
        assert client.get(reverse("admin:payments_payment_changelist")).status_code == 403
        assert client.get(reverse("admin:kyc_kyccase_changelist")).status_code == 200

    def test_only_compliance_officers_may_decide_cases(self, analyst, officer) -> None:
        assert officer.has_perm("kyc.decide_kyccase")
        assert not analyst.has_perm("kyc.decide_kyccase")

    def test_nobody_but_the_database_owner_may_change_audit_rows(self, administrator) -> None:
        assert administrator.has_perm("payments.change_payment")
        assert administrator.has_perm("audits.view_paymentaudit")
        assert not administrator.has_perm("audits.change_paymentaudit")
        assert not administrator.has_perm("auditlog.delete_logentry")
