"""Every Braintree notification kind we handle, made and signed by the SDK's own
`webhook_testing.sample_notification`, applied by the status of the object it carries; and
partial refunds against our local Braintree server, matched on the order id we send."""

from __future__ import annotations

import base64

import braintree
import pytest
from braintree.util.crypto import Crypto
from django.db import transaction

from payments.gateways import get_gateway
from payments.models import Chargeback, Payment, Refund, WebhookEvent
from payments.services.refunds import refund_create, refund_submit
from tests.payments.braintree_samples import (
    DISPUTE_OUTCOMES,
    PRIVATE_KEY,
    PUBLIC_KEY,
    sample_form,
    use_test_keys,
)
from tests.payments.factories import CapturedPaymentFactory, PaymentFactory
from tests.payments.helpers import gateway_payment, payment_audit_count

pytestmark = pytest.mark.django_db

Kind = braintree.WebhookNotification.Kind
LEGACY = "legacy_dispute_id"  # the SDK's sample in the older dispute shape (amount only)


@pytest.fixture(autouse=True)
def _braintree_keys(settings) -> None:
    use_test_keys(settings, settings.BRAINTREE_ENVIRONMENT or "sandbox")


def _credit_settled(refund_reference: str, *, order_id: str, refunded: str) -> dict[str, str]:
    """The SDK's transaction_settled sample made a refund: Braintree refunds are credit
    transactions carrying our order id and the id of the transaction they refund. Signed
    the way the SDK signs its samples."""
    sample = sample_form(Kind.TransactionSettled, refund_reference)
    xml = base64.b64decode(sample["bt_payload"]).decode()
    xml = xml.replace(
        "<type>sale</type>",
        f"<type>credit</type><order-id>{order_id}</order-id>"
        f"<refunded-transaction-id>{refunded}</refunded-transaction-id>",
    )
    payload = base64.encodebytes(xml.encode()).decode()
    return {
        "bt_signature": f"{PUBLIC_KEY}|{Crypto.sha1_hmac_hash(PRIVATE_KEY, payload)}",
        "bt_payload": payload,
    }


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def post(kind: str | dict[str, str], subject_id: str = "") -> WebhookEvent:
        form = kind if isinstance(kind, dict) else sample_form(kind, subject_id)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/webhooks/braintree/", form)
        assert response.status_code == 200, response.content
        return WebhookEvent.objects.get(event_id=response.json()["event_id"])

    return post


# --- Transactions -----------------------------------------------------------------------------


def test_transaction_settled_captures_by_the_transactions_status(deliver) -> None:
    payment = PaymentFactory(
        gateway="braintree", gateway_reference="bt_s1", status="authorized", currency="USD"
    )
    stored = deliver(Kind.TransactionSettled, "bt_s1")  # <status>settled</status>, 100.00 USD
    assert (stored.status, stored.last_error) == ("processed", "")
    payment.refresh_from_db()
    assert (payment.status, payment.captured_amount) == ("captured", 10_000)
    assert payment.gateway_event_at is not None


def test_transaction_settled_for_a_captured_payment_changes_only_the_event_time(deliver) -> None:
    payment = CapturedPaymentFactory(gateway="braintree", gateway_reference="bt_s2")
    stored = deliver(Kind.TransactionSettled, "bt_s2")
    assert stored.status == "processed"
    payment.refresh_from_db()
    assert (payment.status, payment.captured_amount) == ("captured", 10_000)
    assert payment.gateway_event_at is not None


def test_settlement_declined_fails_a_payment_not_yet_captured(deliver) -> None:
    payment = PaymentFactory(
        gateway="braintree", gateway_reference="bt_d1", status="processing", currency="USD"
    )
    assert deliver(Kind.TransactionSettlementDeclined, "bt_d1").status == "processed"
    assert Payment.objects.get(pk=payment.pk).status == "failed"


def test_settlement_declined_after_capture_is_held_for_a_person(deliver) -> None:
    """A captured payment never becomes failed: the event fails, visible with its reason,
    and the payment is left exactly as it was."""
    payment = CapturedPaymentFactory(gateway="braintree", gateway_reference="bt_d2")
    audits = payment_audit_count(payment)
    stored = deliver(Kind.TransactionSettlementDeclined, "bt_d2")
    assert stored.status == "failed"
    assert "declined the settlement of transaction bt_d2" in stored.last_error
    assert "stays captured until a person decides" in stored.last_error
    payment.refresh_from_db()
    assert (payment.status, payment.gateway_event_at) == ("captured", None)
    assert payment_audit_count(payment) == audits


# --- Disputes, in both of the SDK's sample shapes ----------------------------------------------


@pytest.mark.parametrize("subject", ["bt_dispute_new", LEGACY])
@pytest.mark.parametrize(
    ("kind", "expected"),
    DISPUTE_OUTCOMES,
)
def test_each_dispute_kind_records_the_chargeback(deliver, subject, kind, expected) -> None:
    payment = CapturedPaymentFactory(
        gateway="braintree", gateway_reference=subject, currency="USD", amount=30_000
    )
    stored = deliver(kind, subject)
    assert (stored.status, stored.last_error) == ("processed", "")
    chargeback = Chargeback.objects.get()
    assert (chargeback.payment_id, chargeback.gateway_reference, chargeback.status) == (
        payment.pk,
        subject,
        expected,
    )
    # new shape: amount_disputed 100.00; the legacy shape carries only its amount, 250.00
    assert chargeback.amount == (25_000 if subject == LEGACY else 10_000)
    assert chargeback.evidence_due_by is not None
    assert chargeback.gateway_event_at is not None


def test_a_lost_dispute_can_be_won_back_but_a_closed_one_never_reopens(deliver) -> None:
    CapturedPaymentFactory(gateway="braintree", gateway_reference="bt_dl", currency="USD")
    for kind, expected in [
        (Kind.DisputeOpened, "needs_response"),
        (Kind.DisputeLost, "lost"),
        (Kind.DisputeUnderReview, "lost"),  # a closed dispute does not reopen
        (Kind.DisputeWon, "won"),  # the funds reinstated
        (Kind.DisputeOpened, "won"),
    ]:
        deliver(kind, "bt_dl")
        assert Chargeback.objects.get().status == expected, kind
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_check_is_stored_and_processed(deliver) -> None:
    stored = deliver(Kind.Check, "")
    assert (stored.event_type, stored.status) == ("check", "processed")
    assert not Payment.objects.exists() and not Chargeback.objects.exists()


# --- Refunds against our local Braintree --------------------------------------------------


def test_three_partial_refunds_are_each_sent_once_and_counted_once(
    local_braintree, deliver
) -> None:
    payment = gateway_payment(gateway="braintree", amount=10_000, currency="USD")
    refunds = []
    for amount, total in [(2_000, 2_000), (3_000, 5_000), (5_000, 10_000)]:
        refund = refund_create(payment=payment, amount=amount, reason="duplicate")
        refunds.append(refund_submit(refund=refund))
        refund_submit(refund=refund)  # a retry sends nothing
        payment.refresh_from_db()
        # Braintree refunds settle later: pending, and holding their amount.
        assert (payment.status, payment.refunded_amount) == ("captured", total)
    original = local_braintree.transactions[payment.gateway_reference]
    assert len(original.refund_ids) == 3
    at_braintree = get_gateway("braintree").refunds_for_payment(reference=payment.gateway_reference)
    assert {r.reference: r.refund_id for r in at_braintree} == {
        r.gateway_reference: r.pk for r in refunds
    }
    for n, refund in enumerate(refunds):  # Braintree reports each credit settled
        form = _credit_settled(
            refund.gateway_reference,
            order_id=f"refund-{refund.pk}",
            refunded=payment.gateway_reference,
        )
        assert deliver(form).status == "processed"
        payment.refresh_from_db()
        assert payment.status == ("refunded" if n == 2 else "partially_refunded")
    assert payment.refunded_amount == 10_000
    assert set(Refund.objects.values_list("status", flat=True)) == {"succeeded"}
    assert Refund.objects.count() == 3


def test_a_settled_credit_before_our_reference_is_stored_settles_our_refund(deliver) -> None:
    payment = CapturedPaymentFactory(gateway="braintree", gateway_reference="bt_paid")
    ours = refund_create(payment=payment, amount=10_000, reason="duplicate")
    form = _credit_settled("bt_credit_1", order_id=f"refund-{ours.pk}", refunded="bt_paid")
    assert deliver(form).status == "processed"
    refund = Refund.objects.get()  # ours, not a second one
    assert (refund.pk, refund.gateway_reference, refund.status) == (
        ours.pk,
        "bt_credit_1",
        "succeeded",
    )
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", 10_000)


def test_a_credit_made_at_braintree_is_recorded_once(deliver) -> None:
    payment = CapturedPaymentFactory(gateway="braintree", gateway_reference="bt_paid2")
    form = _credit_settled("bt_credit_2", order_id="", refunded="bt_paid2")
    deliver(form)
    deliver(form)  # a redelivery
    refund = Refund.objects.get()
    assert (refund.gateway_reference, refund.amount, refund.status) == (
        "bt_credit_2",
        10_000,
        "succeeded",
    )
    assert Payment.objects.get(pk=payment.pk).refunded_amount == 10_000


def test_refund_failed_releases_the_amount_our_refund_held(deliver) -> None:
    payment = CapturedPaymentFactory(gateway="braintree", gateway_reference="bt_rf")
    ours = refund_create(payment=payment, amount=4_000, reason="duplicate")
    with transaction.atomic():
        ours.gateway_reference = "bt_refund_1"
        ours.save()
    assert Payment.objects.get(pk=payment.pk).refunded_amount == 4_000
    stored = deliver(Kind.RefundFailed, "bt_refund_1")  # <status>processor_declined</status>
    assert (stored.status, stored.last_error) == ("processed", "")
    assert Refund.objects.get().status == "failed"
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("captured", 0)


def test_refund_failed_for_an_unknown_refund_fails_the_event_and_writes_nothing(deliver) -> None:
    stored = deliver(Kind.RefundFailed, "bt_refund_unknown")
    assert stored.status == "failed"
    assert "No Braintree refund bt_refund_unknown here" in stored.last_error
    assert not Refund.objects.exists()
