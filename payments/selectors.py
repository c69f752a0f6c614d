from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from django.apps import apps
from django.conf import settings
from django.db.models import Case, F, Prefetch, Q, QuerySet, When
from django.urls import reverse
from django.utils.module_loading import import_string

from audits.crypto.envelope import blind_index_candidates
from audits.models import PaymentAudit
from config.querying import narrowed

from .core.approvals import approval_kinds
from .core.records import check_keywords
from .exceptions import PaymentsError
from .models import (
    PAYOUT_ACCOUNT_LIVE,
    ApprovalRequest,
    Chargeback,
    Gateway,
    Merchant,
    MicroDeposit,
    Payment,
    PayoutAccount,
    ReconcileRun,
    WebhookEvent,
)


class PaymentNotFound(PaymentsError):
    def __init__(self, *, gateway: str, reference: str) -> None:
        super().__init__(f"No {gateway} payment with reference '{reference}'.")


def merchant_list() -> QuerySet[Merchant]:
    return Merchant.objects.order_by("pk")


def payment_by_gateway_reference(*, gateway: str, reference: str) -> Payment:
    payment = Payment.objects.filter(gateway=gateway, gateway_reference=reference).first()
    if payment is None:
        raise PaymentNotFound(gateway=gateway, reference=reference)
    return payment


class PaymentFilters(TypedDict, total=False):
    """The payments list's search form: each filter left out, None or "" narrows nothing."""

    status: str
    gateway: str
    currency: str
    q: str  # a gateway reference, customer e-mail, payment id or merchant name
    created_from: Any  # dates
    created_to: Any
    amount_min: int | None
    amount_max: int | None
    merchant_id: int | None


def payment_search(**filters: Unpack[PaymentFilters]) -> QuerySet[Payment]:
    """Payments for the operations list and its CSV export, newest first, with the merchant."""
    check_keywords(filters, PaymentFilters)
    payments = narrowed(
        Payment.objects.select_related("merchant").order_by("-pk"),
        status=filters.get("status"),
        gateway=filters.get("gateway"),
        currency=(filters.get("currency") or "").upper(),
        merchant_id=filters.get("merchant_id") or None,
        created_at__date__gte=filters.get("created_from"),
        created_at__date__lte=filters.get("created_to"),
        amount__gte=filters.get("amount_min"),
        amount__lte=filters.get("amount_max"),
    )
    q = filters.get("q")
    if q:
        q = q.strip()
        by_reference = Q(gateway_reference=q) | payment_customer_email_q(q)
        if q.isdigit():
            by_reference |= Q(pk=int(q))
        payments = payments.filter(
            by_reference
            | Q(merchant__legal_name__icontains=q)
            | Q(merchant__trading_name__icontains=q)
        )
    return payments


def keyset_page(
    queryset: QuerySet[Any], *, after: int | None, size: int = 50
) -> tuple[list[Any], int | None]:
    """One page of a queryset ordered by descending id, and the id to continue after (or
    None). No COUNT, no OFFSET: the thousandth page costs what the first does."""
    if after is not None:
        queryset = queryset.filter(pk__lt=after)
    rows = list(queryset[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].pk if more and rows else None)


WEBHOOK_DESK_VIEWS = {
    "spent": "Attempts spent",
    "scheduled": "Retrying",
    "all": "All",
}


def webhook_event_desk(*, show: str = "spent", provider: str = "") -> QuerySet[WebhookEvent]:
    """Webhook events for the operations screen, newest first (by id, for keyset pages).
    `spent`: failed with no attempt left, waiting for a person; `scheduled`: not finished,
    with a next attempt the sweep will run."""
    events = WebhookEvent.objects.order_by("-pk")
    if show == "spent":
        events = events.filter(status=WebhookEvent.Status.FAILED, next_attempt_at__isnull=True)
    elif show == "scheduled":
        events = events.filter(next_attempt_at__isnull=False)
    if provider:
        events = events.filter(provider=provider)
    return events


def audit_timeline(*, objects: list[tuple[str, Any]], limit: int = 200) -> list[PaymentAudit]:
    """payment_audits rows for the given (object_type, id) pairs, oldest first, with users."""
    condition = Q(pk__in=[])
    for object_type, object_ids in objects:
        ids = [
            str(i)
            for i in (object_ids if isinstance(object_ids, list | tuple | set) else [object_ids])
        ]
        if ids:
            condition |= Q(object_type=object_type, object_id__in=ids)
    rows = (
        PaymentAudit.objects.filter(condition)
        .select_related("user")
        .order_by("-created_at")[:limit]
    )
    return list(reversed(rows))


def payment_timeline(payment: Payment) -> list[PaymentAudit]:
    refund_ids = list(payment.refunds.values_list("pk", flat=True))
    chargeback_ids = list(payment.chargebacks.values_list("pk", flat=True))
    return audit_timeline(
        objects=[
            ("payments.payment", payment.pk),
            ("payments.refund", refund_ids),
            ("payments.chargeback", chargeback_ids),
        ]
    )


def chargeback_desk(
    *, open_only: bool = True, gateway: str = "", assignee_id: int | None = None
) -> QuerySet[Chargeback]:
    chargebacks = Chargeback.objects.select_related("payment__merchant", "assignee")
    if open_only:
        chargebacks = chargebacks.filter(status__in=Chargeback.OPEN)
    if gateway:
        chargebacks = chargebacks.filter(gateway=gateway)
    if assignee_id:
        chargebacks = chargebacks.filter(assignee_id=assignee_id)
    return chargebacks.order_by(F("evidence_due_by").asc(nulls_last=True), "pk")


def approvals_pending() -> QuerySet[ApprovalRequest]:
    return (
        ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING)
        .select_related("requested_by")
        .order_by("expires_at", "pk")
    )


def approvals_for(target: Any) -> QuerySet[ApprovalRequest]:
    return (
        ApprovalRequest.objects.filter(
            target_type=target._meta.label_lower, target_id=str(target.pk)
        )
        .select_related("requested_by", "decided_by")
        .order_by("-requested_at")
    )


def reconcile_runs_latest() -> list[tuple[str, ReconcileRun | None]]:
    """The newest reconcile run of each gateway (None if it never ran): one query per gateway,
    each an index scan on (gateway, -started_at)."""
    return [
        (label, ReconcileRun.objects.filter(gateway=value).order_by("-started_at", "-pk").first())
        for value, label in Gateway.choices
    ]


def merchant_facts_for_evidence(merchant: Merchant) -> list[str]:
    """Lines other apps hold about a merchant, for a dispute's evidence draft (KYC's
    verification documents). settings.DISPUTE_EVIDENCE_SOURCES lists the functions that give
    them, so payments reads them without importing the apps that sit on top of it."""
    return [
        line for path in settings.DISPUTE_EVIDENCE_SOURCES for line in import_string(path)(merchant)
    ]


@dataclass(frozen=True)
class ApprovalInboxRow:
    """One pending request as the inbox shows it."""

    request: ApprovalRequest
    target: Any  # the payment, dispute or case, or None when it is gone
    target_label: str
    url: str
    merchant: Merchant | None
    amount: int | None
    currency: str


def approval_inbox_rows(*, limit: int = 200) -> list[ApprovalInboxRow]:
    """Pending requests with what a checker needs to decide: the amount and its currency, the
    merchant, a link to the payment or case, who asked. One query for the requests (with their
    requesters) and one per kind of target on the page, however many rows."""
    requests = list(approvals_pending()[:limit])
    ids: dict[str, set[str]] = {}
    for request in requests:
        ids.setdefault(request.target_type, set()).add(request.target_id)
    targets: dict[tuple[str, str], Any] = {}
    for target_type, pks in ids.items():
        try:
            model = apps.get_model(target_type)
        except (LookupError, ValueError):
            continue
        names = {f.name for f in model._meta.concrete_fields}
        related = [p for p in ("merchant", "payment__merchant") if p.split("__")[0] in names]
        for target in model._default_manager.select_related(*related).filter(pk__in=pks):
            targets[(target_type, str(target.pk))] = target
    return [_inbox_row(r, targets.get((r.target_type, r.target_id))) for r in requests]


def _inbox_row(request: ApprovalRequest, target: Any) -> ApprovalInboxRow:
    payment = target if isinstance(target, Payment) else getattr(target, "payment", None)
    merchant = getattr(target, "merchant", None) or getattr(payment, "merchant", None)
    amount = request.payload.get("amount") if isinstance(request.payload, dict) else None
    if amount is None:
        amount = getattr(target, "amount", None)
    currency = getattr(target, "currency", "") or getattr(payment, "currency", "")
    kind = approval_kinds().get(request.action)
    url_name = kind.target_url_name if kind else ""
    url = reverse(url_name, args=[request.target_id]) if url_name and target is not None else ""
    if isinstance(target, Payment):
        label = f"Payment {target.pk}"
    elif isinstance(target, Chargeback):
        label = f"Dispute {target.gateway_reference}"
    elif target is not None:
        label = str(target)  # a KYC case's reference
    else:
        label = f"{request.target_type} {request.target_id} (gone)"
    return ApprovalInboxRow(
        request=request,
        target=target,
        target_label=label,
        url=url,
        merchant=merchant,
        amount=int(amount) if isinstance(amount, int | str) and str(amount).isdigit() else None,
        currency=currency if isinstance(currency, str) else "",
    )


def merchant_filter_contact_email(queryset: QuerySet[Merchant], email: str) -> QuerySet[Merchant]:
    """Merchants whose contact email is exactly `email` (any case), found by its blind index
    under every configured key, since the column itself holds only ciphertext."""
    field = Merchant._meta.get_field("contact_email_index")
    return queryset.filter(contact_email_index__in=blind_index_candidates(field.normalise(email)))


def merchant_filter_tax_id(queryset: QuerySet[Merchant], tax_id: str) -> QuerySet[Merchant]:
    """Merchants whose tax id is exactly `tax_id` (any case), by its blind index. Only for
    people who may see it (payments.view_merchant_contact): a hit tells who the merchant is."""
    field = Merchant._meta.get_field("tax_id_index")
    term = field.normalise(tax_id)
    if not term:
        return queryset.none()
    return queryset.filter(tax_id_index__in=blind_index_candidates(term))


def payment_customer_email_q(email: str) -> Q:
    """Payments whose customer email is exactly `email` (any case), by its blind index."""
    field = Payment._meta.get_field("customer_email_index")
    term = field.normalise(email)
    return Q(customer_email_index__in=blind_index_candidates(term)) if term else Q(pk__in=[])


def payout_account_filter_number(
    queryset: QuerySet[PayoutAccount], term: str
) -> QuerySet[PayoutAccount]:
    """Payout accounts whose number is exactly `term`: an IBAN, or "routing/account" (any
    spacing or case), found by the blind index under every configured key."""
    compact = "".join(term.split()).upper()
    routing, _, number = compact.rpartition("/")
    field = PayoutAccount._meta.get_field("account_index")
    identity = field.normalise(f"{routing}/{number}")
    return queryset.filter(account_index__in=blind_index_candidates(identity))


def payout_account_current(*, merchant_id: int) -> PayoutAccount | None:
    """The merchant's payout account: the live one (pending, awaiting confirmation or
    verified), else the newest; its deposits prefetched without their amounts (what the
    merchant confirms, and a decryption each). Two queries."""
    return (
        PayoutAccount.objects.filter(merchant_id=merchant_id)
        .prefetch_related(Prefetch("deposits", MicroDeposit.objects.defer("amount")))
        .order_by(
            Case(When(status__in=PAYOUT_ACCOUNT_LIVE, then=0), default=1),
            "-created_at",
            "-pk",
        )
        .first()
    )
