from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from audits.admin_mixins import AuditedAdmin, ReadOnlyInline, RecordAdmin, masked_column
from audits.masking import masked
from config.request_types import AuthenticatedHttpRequest

from .core.errors import DomainError
from .core.money import format_minor
from .inbox.store import webhook_event_requeue
from .models import (
    ApprovalRequest,
    Chargeback,
    ChargebackEvidence,
    EvidenceFile,
    Merchant,
    MerchantStatus,
    MicroDeposit,
    Payment,
    PayoutAccount,
    Refund,
    WebhookEvent,
)
from .selectors import (
    merchant_filter_contact_email,
    merchant_filter_tax_id,
    payment_customer_email_q,
    payout_account_current,
    payout_account_filter_number,
)
from .services.merchants import merchant_set_status
from .services.payments import payment_cancel
from .services.payout_accounts import merchant_payouts_set


def _link(obj: Any, text: str | None = None) -> str:
    if obj is None:
        return "-"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text or str(obj))


def _run_for_each(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, action: Any, done: str
) -> None:
    changed, refused = 0, []
    for obj in queryset:
        try:
            action(obj)
            changed += 1
        except DomainError as exc:
            refused.append(str(exc))
    if changed:
        modeladmin.message_user(request, f"{done}: {changed}.", messages.SUCCESS)
    for reason in refused:
        modeladmin.message_user(request, reason, messages.ERROR)


PerObject = Callable[[Any, AuthenticatedHttpRequest, Any], object]
Action = Callable[[Any, AuthenticatedHttpRequest, QuerySet], None]


def _each_selected(done: str) -> Callable[[PerObject], Action]:
    """Makes an admin action of a method that acts on one row: it runs on each selected row,
    those done are counted under `done`, each refusal's message is shown."""

    def action_for(per_object: PerObject) -> Action:
        @functools.wraps(per_object)
        def action(modeladmin: Any, request: AuthenticatedHttpRequest, queryset: QuerySet) -> None:
            _run_for_each(
                modeladmin,
                request,
                queryset,
                lambda obj: per_object(modeladmin, request, obj),
                done,
            )

        return action

    return action_for


class ReasonActionForm(ActionForm):
    reason = forms.CharField(
        required=False,
        max_length=200,
        help_text="Why: required to suspend or re-activate; kept on the merchant.",
    )


@admin.register(Merchant)
class MerchantAdmin(AuditedAdmin):
    list_display = [
        "legal_name",
        "trading_name",
        "country",
        "status",
        "risk_level",
        "contact_email",
        "created_at",
    ]
    list_filter = [
        "status",
        "risk_level",
        "flagged_for_review",
        "business_type",
        "country",
        "created_at",
    ]
    search_fields = [
        "legal_name",
        "trading_name",
        "=stripe_account_id",
        "=braintree_merchant_account_id",
    ]
    readonly_fields = [
        "status",
        "flagged_for_review",
        "flag_reason",
        "stripe_account_id",
        "braintree_merchant_account_id",
        "payout_account",
        "created_at",
        "updated_at",
        "audit_trail",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "legal_name",
                    "trading_name",
                    "country",
                    "business_type",
                    "status",
                    "risk_level",
                ]
            },
        ),
        ("Review", {"fields": ["flagged_for_review", "flag_reason"]}),
        ("Contact", {"fields": ["contact_name", "contact_email", "contact_phone"]}),
        ("Company identifiers", {"fields": ["tax_id", "registration_number"]}),
        ("Gateways", {"fields": ["stripe_account_id", "braintree_merchant_account_id"]}),
        # The box is refused (next to it) without a verified account: Merchant.clean.
        ("Payouts", {"fields": ["payouts_enabled", "payout_account"]}),
        ("History", {"fields": ["created_at", "updated_at", "audit_trail"]}),
    ]
    actions = ["reactivate", "suspend", "enable_payouts", "disable_payouts"]
    action_form = ReasonActionForm
    # Shown to a role that does not work with the contact person, in place of each field.
    MASKED = {
        "contact_name": "masked_contact_name",
        "contact_email": "masked_contact_email",
        "contact_phone": "masked_contact_phone",
        "tax_id": "masked_tax_id",
        "registration_number": "masked_registration_number",
    }

    # A role that does not work with the contact person sees it masked (audits/masking.py).
    def _sees_contact(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.view_merchant_contact")

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = list(super().get_list_display(request))
        if not self._sees_contact(request):
            shown = [
                self.MASKED.get(name, name) if isinstance(name, str) else name for name in shown
            ]
        return shown

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if self._sees_contact(request):
            return super().get_fieldsets(request, obj)
        return [
            (name, {**options, "fields": [self.MASKED.get(str(f), f) for f in options["fields"]]})
            for name, options in super().get_fieldsets(request, obj)
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly if self._sees_contact(request) else readonly + list(self.MASKED.values())

    masked_contact_name = masked_column("contact_name")
    masked_contact_email = masked_column("contact_email")
    masked_contact_phone = masked_column("contact_phone")
    masked_tax_id = masked_column("tax_id")
    masked_registration_number = masked_column("registration_number")

    @admin.display(description="payout account")
    def payout_account(self, merchant: Merchant) -> str:
        """The current account, masked, with its verification state."""
        account = payout_account_current(merchant_id=merchant.pk)
        if account is None:
            return "none: the merchant adds one through the API (payout-account/)"
        return _link(account, f"{account} — {account.get_status_display()}")

    @admin.action(description="Enable payouts (needs a verified payout account)")
    @_each_selected("Payouts enabled")
    def enable_payouts(self, request: AuthenticatedHttpRequest, merchant: Merchant) -> None:
        merchant_payouts_set(merchant=merchant, enabled=True, actor=request.user)

    @admin.action(description="Disable payouts")
    @_each_selected("Payouts disabled")
    def disable_payouts(self, request: AuthenticatedHttpRequest, merchant: Merchant) -> None:
        merchant_payouts_set(merchant=merchant, enabled=False, actor=request.user)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if "@" in search_term and self._sees_contact(request):
            # The contact email is encrypted: an exact search goes through its blind index.
            # Only for those who may see it: a search would tell others who the contact is.
            found |= merchant_filter_contact_email(queryset, search_term)
        elif search_term.strip() and self._sees_contact(request):
            # So is the tax id: found by its blind index, exact match only.
            found |= merchant_filter_tax_id(queryset, search_term)
        return found, may_have_duplicates

    def _set_status(
        self, request: AuthenticatedHttpRequest, merchant: Merchant, status: MerchantStatus
    ) -> None:
        """The status set, with the reason typed next to the actions (ReasonActionForm)."""
        reason = request.POST.get("reason", "")
        merchant_set_status(merchant=merchant, status=status, reason=reason, actor=request.user)

    @admin.action(description="Re-activate selected suspended merchants", permissions=["change"])
    @_each_selected("Re-activated")
    def reactivate(self, request: AuthenticatedHttpRequest, merchant: Merchant) -> None:
        # A pending merchant is refused by the service: only an approved KYC case activates.
        self._set_status(request, merchant, Merchant.Status.ACTIVE)

    @admin.action(description="Suspend selected merchants", permissions=["change"])
    @_each_selected("Suspended")
    def suspend(self, request: AuthenticatedHttpRequest, merchant: Merchant) -> None:
        self._set_status(request, merchant, Merchant.Status.SUSPENDED)


class MicroDepositInline(ReadOnlyInline):
    """A deposit's progress at the rail; never its amount (what the merchant confirms)."""

    model = MicroDeposit
    fields = ["status", "rail", "rail_reference", "return_reason", "created_at", "updated_at"]


@admin.register(PayoutAccount)
class PayoutAccountAdmin(RecordAdmin):
    """Read only: the merchant adds and confirms through the API. The number is shown masked
    to everyone (its last four); the holder's name to those who may see contact data."""

    list_display = [
        "masked_number",
        "merchant",
        "status",
        "scheme",
        "country",
        "currency",
        "attempts",
        "expires_at",
        "verified_at",
    ]
    list_filter = ["status", "scheme", "country", "created_at"]
    list_select_related = ["merchant"]
    search_fields = ["merchant__legal_name", "merchant__trading_name"]
    inlines = [MicroDepositInline]
    FIELDS = [
        "merchant",
        "holder",
        "masked_number",
        "scheme",
        "routing_code",
        "country",
        "currency",
        "status",
        "attempts",
        "expires_at",
        "verified_at",
        "failure_reason",
        "rail",
        "created_at",
        "audit_trail",
    ]

    @admin.display(description="account number")
    def masked_number(self, account: PayoutAccount) -> str:
        return account.masked_number

    @admin.display(description="holder")
    def masked_holder(self, account: PayoutAccount) -> str:
        return masked("contact_name", account.holder_name)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A role that does not work with contact persons sees the holder's name masked.
        sees = request.user.has_perm("payments.view_merchant_contact")
        return [
            ("holder_name" if sees else "masked_holder") if name == "holder" else name
            for name in self.FIELDS
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if request.user.has_perm("payments.view_merchant_contact") and any(
            c.isdigit() for c in search_term
        ):
            # The number is encrypted: an exact search (IBAN, or routing/account) by its blind
            # index, for those who may see account holders only.
            found |= payout_account_filter_number(queryset, search_term)
        return found, may_have_duplicates


@admin.display(description="Payment")
def _payment_link(modeladmin: Any, obj: Refund | Chargeback) -> str:
    return _link(obj.payment, f"Payment {obj.payment_id}")


@admin.display(description="Amount", ordering="amount")
def _refund_amount(modeladmin: Any, obj: Refund) -> str:
    return format_minor(obj.amount, obj.payment.currency)


# A refund's columns, alike in the refunds' list and on its payment's page.
REFUND_COLUMNS = (
    "amount_display",
    "status",
    "reason",
    "gateway_reference",
    "requested_by",
    "created_at",
)


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = REFUND_COLUMNS
    amount_display = _refund_amount


class ChargebackInline(ReadOnlyInline):
    model = Chargeback
    fields = ["gateway_reference", "reason", "amount_display", "status", "evidence_due_by"]

    @admin.display(description="Amount")
    def amount_display(self, obj: Chargeback) -> str:
        return format_minor(obj.amount, obj.currency)


@admin.register(Payment)
class PaymentAdmin(RecordAdmin):
    # payments come from the gateways
    list_display = [
        "id",
        "merchant_link",
        "gateway",
        "gateway_reference",
        "amount_display",
        "status",
        "card",
        "customer_email",
        "created_at",
    ]
    list_select_related = ["merchant"]
    # No currency filter: it would SELECT DISTINCT over the whole table on every page.
    list_filter = ["status", "gateway", "created_at"]
    search_fields = [
        "=gateway_reference",
        "merchant__legal_name",
        "merchant__trading_name",
    ]
    raw_id_fields = ["merchant"]
    # Everything here came from the gateway or a service: the console shows it, never edits it.
    readonly_fields = [
        "merchant",
        "gateway",
        "gateway_reference",
        "amount_display",
        "captured_display",
        "refunded_display",
        "status",
        "card_brand",
        "card_last4",
        "customer_email",
        "created_at",
        "updated_at",
        "audit_trail",
    ]
    fields = [*readonly_fields[:-3], "description", "created_at", "updated_at", "audit_trail"]
    inlines = [RefundInline, ChargebackInline]
    actions = ["cancel"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if "@" in search_term:
            # The customer email is encrypted: an exact search goes through its blind index.
            found |= queryset.filter(payment_customer_email_q(search_term))
        return found, may_have_duplicates

    @admin.display(description="Merchant", ordering="merchant__legal_name")
    def merchant_link(self, obj: Payment) -> str:
        return _link(obj.merchant)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj: Payment) -> str:
        return format_minor(obj.amount, obj.currency)

    @admin.display(description="Captured")
    def captured_display(self, obj: Payment) -> str:
        return format_minor(obj.captured_amount, obj.currency)

    @admin.display(description="Refunded or being refunded")
    def refunded_display(self, obj: Payment) -> str:
        return format_minor(obj.refunded_amount, obj.currency)

    @admin.display(description="Card")
    def card(self, obj: Payment) -> str:
        return f"{obj.card_brand} •••• {obj.card_last4}" if obj.card_last4 else "-"

    @admin.action(description="Cancel selected payments", permissions=["change"])
    @_each_selected("Canceled at the gateway")
    def cancel(self, request: AuthenticatedHttpRequest, payment: Payment) -> None:
        # Through the gateway first: canceling only our row would leave the
        # authorization holding the customer's funds.
        payment_cancel(payment=payment, actor=request.user)


@admin.register(Refund)
class RefundAdmin(RecordAdmin):
    # refunds are requested through the refund service
    list_display = ["id", "payment_link", *REFUND_COLUMNS]
    list_select_related = ["payment", "requested_by"]
    list_filter = ["status", "reason", "created_at"]
    search_fields = ["=gateway_reference", "=payment__gateway_reference"]
    readonly_fields = [
        "payment",
        "amount_display",
        "status",
        "failure_reason",
        "reason",
        "reason_detail",
        "gateway_reference",
        "requested_by",
        "created_at",
        "updated_at",
        "audit_trail",
    ]

    payment_link = _payment_link
    amount_display = _refund_amount


@admin.register(Chargeback)
class ChargebackAdmin(RecordAdmin):
    # chargebacks arrive from the gateways
    list_display = [
        "gateway_reference",
        "payment_link",
        "gateway",
        "amount_display",
        "reason",
        "status",
        "evidence_due_by",
        "created_at",
    ]
    list_select_related = ["payment"]
    list_filter = ["status", "gateway", "evidence_due_by"]
    search_fields = ["=gateway_reference", "=payment__gateway_reference", "reason"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "payment",
        "gateway",
        "gateway_reference",
        "reason",
        "amount_display",
        "status",
        "evidence_due_by",
        "created_at",
        "updated_at",
        "audit_trail",
    ]

    payment_link = _payment_link

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj: Chargeback) -> str:
        return format_minor(obj.amount, obj.currency)


class WebhookAttemptsFilter(admin.SimpleListFilter):
    title = "attempts"
    parameter_name = "attempts"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("spent", "Attempts spent"), ("scheduled", "Next attempt scheduled")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "spent":
            return queryset.filter(status=WebhookEvent.Status.FAILED, next_attempt_at__isnull=True)
        if self.value() == "scheduled":
            return queryset.filter(next_attempt_at__isnull=False)
        return queryset


@admin.register(WebhookEvent)
class WebhookEventAdmin(RecordAdmin):
    list_display = [
        "event_id",
        "provider",
        "event_type",
        "status",
        "attempts",
        "attempts_spent",
        "next_attempt_at",
        "received_at",
        "processed_at",
        "short_error",
    ]
    list_filter = [WebhookAttemptsFilter, "provider", "status", "received_at"]
    search_fields = ["=event_id", "event_type"]
    readonly_fields = [
        "provider",
        "event_id",
        "event_type",
        "event_created_at",
        "received_at",
        "source_ip",
        "signature",
        "signature_reverified",
        "raw_body",
        "payload",
        "processed_at",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "audit_trail",
    ]
    actions = ["replay"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The list never shows the bodies: up to WEBHOOK_MAX_BYTES each, twice, per row.
        queryset = super().get_queryset(request)
        if request.resolver_match and (request.resolver_match.url_name or "").endswith(
            "changelist"
        ):
            queryset = queryset.defer("payload", "raw_body")
        return queryset

    @admin.display(description="Last error")
    def short_error(self, obj: WebhookEvent) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.display(description="Attempts spent", boolean=True)
    def attempts_spent(self, obj: WebhookEvent) -> bool:
        return obj.status == WebhookEvent.Status.FAILED and obj.next_attempt_at is None

    @admin.display(description="Signature re-verified")
    def signature_reverified(self, obj: WebhookEvent) -> str:
        from .inbox.verify import webhook_event_reverify

        verdict = webhook_event_reverify(obj)
        if verdict is None:
            return "cannot tell (no evidence stored, or the gateway is not configured)"
        return "yes, against the current secrets" if verdict else "NO: does not match"

    @admin.action(
        description="Replay selected events (a fresh set of attempts)", permissions=["change"]
    )
    @_each_selected("Queued for processing again")
    def replay(self, request: AuthenticatedHttpRequest, event: WebhookEvent) -> None:
        webhook_event_requeue(event=event, actor=request.user)


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(RecordAdmin):
    # requests come from the services that need them
    list_display = [
        "id",
        "action",
        "target_type",
        "target_id",
        "status",
        "requested_by",
        "requested_at",
        "expires_at",
        "decided_by",
    ]
    list_select_related = ["requested_by", "decided_by"]
    list_filter = ["status", "action", "requested_at"]
    search_fields = ["=target_id", "=requested_by__username"]
    readonly_fields = [
        "action",
        "target_type",
        "target_id",
        "payload",
        "reason",
        "status",
        "requested_by",
        "requested_at",
        "expires_at",
        "decided_by",
        "decided_at",
        "decision_note",
        "audit_trail",
    ]
    actions = ["approve"]

    def has_approve_permission(self, request: HttpRequest) -> bool:
        # Read-only roles never see the action; the service checks each request's own kind.
        from .core.approvals import approval_kinds

        return any(request.user.has_perm(k.permission) for k in approval_kinds().values())

    @admin.action(
        description="Approve selected requests (as a second person)", permissions=["approve"]
    )
    @_each_selected("Approved")
    def approve(self, request: AuthenticatedHttpRequest, approval: ApprovalRequest) -> None:
        from .core.approvals import approval_approve

        approval_approve(request=approval, actor=request.user)


@admin.register(ChargebackEvidence)
class ChargebackEvidenceAdmin(RecordAdmin):
    list_display = ["chargeback", "updated_by", "updated_at", "submitted_by", "submitted_at"]
    list_select_related = ["chargeback", "updated_by", "submitted_by"]
    search_fields = ["=chargeback__gateway_reference"]
    readonly_fields = [
        "chargeback",
        "text",
        "updated_by",
        "updated_at",
        "submitted_by",
        "submitted_at",
        "audit_trail",
    ]


@admin.register(EvidenceFile)
class EvidenceFileAdmin(RecordAdmin):
    list_display = [
        "original_name",
        "evidence",
        "content_type",
        "size",
        "uploaded_by",
        "uploaded_at",
    ]
    list_select_related = ["evidence__chargeback", "uploaded_by"]
    search_fields = ["=sha256"]
    exclude = ["file"]
    readonly_fields = [
        "evidence",
        "original_name",
        "sha256",
        "size",
        "content_type",
        "uploaded_by",
        "uploaded_at",
        "audit_trail",
    ]


# --- API tokens (appended with its own imports, to keep this section self-contained) ---------

from django import forms  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402
from django.template.response import TemplateResponse  # noqa: E402
from django.utils import timezone  # noqa: E402

from .integration import tokens as api_tokens  # noqa: E402
from .models import ApiToken  # noqa: E402


class ApiTokenCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in ApiToken.SCOPES],
        widget=forms.CheckboxSelectMultiple,
    )
    hours = forms.IntegerField(
        min_value=1,
        initial=24,
        help_text="lifetime in hours (24 by default; at most API_TOKEN_MAX_HOURS)",
    )

    class Meta:
        model = ApiToken
        fields = ["name", "owner", "merchant", "scopes"]

    def clean_hours(self) -> int:
        hours = self.cleaned_data["hours"]
        if hours > settings.API_TOKEN_MAX_HOURS:
            raise ValidationError(f"At most {settings.API_TOKEN_MAX_HOURS} hours.")
        return hours


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    """Issued here, revoked by the action; never edited: a changed scope is a new token.

    The full token is shown once, on the page that answers the creating POST: it is kept
    nowhere (not in a message, which lives in a cookie, nor in the session), so no later GET,
    cookie or session row can carry it. Its hash is never shown."""

    list_display = [
        "name",
        "prefix",
        "owner",
        "merchant",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["revoked_at", "expires_at"]
    list_select_related = ["owner", "merchant"]
    search_fields = ["name", "=prefix", "owner__username"]
    raw_id_fields = ["owner", "merchant"]
    actions = ["revoke"]
    readonly_fields = [
        "name",
        "prefix",
        "owner",
        "merchant",
        "scopes",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "last_used_ip",
        "created_at",
        "audit_trail",
    ]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = ApiTokenCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "owner", "merchant", "scopes", "hours"]
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            return
        token, raw = api_tokens.api_token_create(
            owner=form.cleaned_data["owner"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            merchant=form.cleaned_data.get("merchant"),
            hours=form.cleaned_data["hours"],
            actor=cast(User, request.user),  # the admin serves signed-in staff only
        )
        obj.pk = token.pk
        obj.refresh_from_db()
        request._issued_api_token = raw  # type: ignore[attr-defined]  # this request only

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: Any = None
    ) -> Any:
        raw = getattr(request, "_issued_api_token", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            "audits/api_token_issued.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "API token issued",
                "token": obj,
                "raw": raw,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: AuthenticatedHttpRequest, queryset: QuerySet) -> None:
        now = timezone.now()
        _run_for_each(
            self,
            request,
            queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now),
            lambda token: api_tokens.api_token_revoke(token=token, actor=request.user),
            "Revoked",
        )


# The fraud rule editor lives with the rules engine; imported so the console registers it.
from .fraud import admin as fraud_admin  # noqa: E402, F401
