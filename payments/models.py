"""Merchants, payments, refunds, chargebacks, payout accounts and the webhook inbox.

Money is an integer amount in the currency's minor unit plus an ISO 4217 code. No card number,
CVC or customer's bank account number is stored: gateways hold them, we keep their tokens and
last four. A merchant's own payout account number is encrypted at rest (PayoutAccount).
"""

from __future__ import annotations

from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from audits.crypto import subjects
from audits.crypto.envelope import blind_index_candidates
from audits.crypto.fields import (
    BlindIndexField,
    EncryptedCharField,
    EncryptedEmailField,
    EncryptedStr,
    EncryptedTextField,
    ErasedStr,
)
from audits.modelling import (
    Created,
    Timestamped,
    choice_valid,
    matches,
    optional_user,
    sha256_hex,
    stored_file_checks,
    unique_when_set,
)
from audits.models import SubjectKey
from audits.querysets import AuditedModel

from .core.state import StatusMachineMixin

COUNTRY_CODE = r"^[A-Z]{2}$"
CURRENCY_CODE = r"^[A-Z]{3}$"


class RiskLevel(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Gateway(models.TextChoices):
    STRIPE = "stripe"
    BRAINTREE = "braintree"
    # Our own test gateway (payments/gateways/sandbox.py): DEBUG only, refused in production.
    SANDBOX = "sandbox"


class MerchantStatus(models.TextChoices):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class Merchant(StatusMachineMixin, Timestamped, AuditedModel):
    Status = MerchantStatus

    STATUS_TRANSITIONS = {
        Status.PENDING: frozenset({Status.ACTIVE, Status.CLOSED}),
        Status.ACTIVE: frozenset({Status.SUSPENDED, Status.CLOSED}),
        Status.SUSPENDED: frozenset({Status.ACTIVE, Status.CLOSED}),
        Status.CLOSED: frozenset(),
    }

    legal_name = models.CharField(max_length=200)
    trading_name = models.CharField(max_length=200, blank=True)

    class BusinessType(models.TextChoices):
        RETAIL = "retail"
        SOFTWARE = "software"
        TRAVEL = "travel"
        GAMBLING = "gambling"
        CRYPTO = "crypto", "Crypto assets"
        MONEY_SERVICES = "money_services", "Money services"
        OTHER = "other"

    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, e.g. GB")
    business_type = models.CharField(
        max_length=20, choices=BusinessType.choices, default=BusinessType.RETAIL
    )
    # Personal data: encrypted at rest; the console finds a contact email by its blind index.
    # The contact person's data is encrypted under their own key (contact_subject), so that
    # erasing them (kyc/privacy.py) makes every copy unreadable, audit rows included.
    contact_name = EncryptedCharField(max_length=200, blank=True, subject="contact_subject_id")
    contact_email = EncryptedEmailField(subject="contact_subject_id")
    contact_email_index = BlindIndexField(source="contact_email", lowercase=True)
    contact_phone = EncryptedCharField(max_length=32, blank=True, subject="contact_subject_id")
    contact_subject = models.ForeignKey(
        SubjectKey,
        models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        help_text="the contact person's own data key; a new person gets a new key",
    )
    # Company identifiers, encrypted too; staff find a merchant by its exact tax id.
    tax_id = EncryptedCharField(
        "tax id", max_length=32, blank=True, help_text="VAT or tax number, e.g. GB123456789"
    )
    tax_id_index = BlindIndexField(source="tax_id", lowercase=True)
    registration_number = EncryptedCharField(
        max_length=64, blank=True, help_text="company register number"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    stripe_account_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    flagged_for_review = models.BooleanField(
        default=False, help_text="set by the monthly chargeback ratio check"
    )
    flag_reason = models.CharField(max_length=255, blank=True)
    # Payouts go only to a bank account proven by micro-deposits (issue 15, point 5): the
    # database refuses the flag without the verified account it pays to.
    payouts_enabled = models.BooleanField(
        default=False, help_text="needs a payout account verified by micro-deposits"
    )
    verified_payout_account = models.OneToOneField(
        "payments.PayoutAccount",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="the account payouts go to; set only by its verification",
    )
    braintree_merchant_account_id = models.CharField(
        max_length=64, null=True, blank=True, unique=True
    )

    class Meta(AuditedModel.Meta):
        ordering = ["legal_name", "pk"]
        permissions = [
            ("view_merchant_contact", "Can see merchant contact persons' personal data"),
            ("erase_merchant_contact", "Can erase a contact person's data (GDPR art. 17)"),
        ]
        constraints = [
            matches("country", COUNTRY_CODE, "merchant_country_iso_alpha2"),
            choice_valid("status", MerchantStatus, "merchant_status_valid"),
            choice_valid("risk_level", RiskLevel, "merchant_risk_level_valid"),
            models.CheckConstraint(
                condition=Q(payouts_enabled=False) | Q(verified_payout_account__isnull=False),
                name="merchant_payouts_need_verified_account",
                violation_error_message="Payouts need a payout account verified by micro-deposits.",
            ),
        ]
        indexes = [
            models.Index(fields=["legal_name"], name="merchant_legal_name_idx"),
            models.Index(fields=["trading_name"], name="merchant_trading_name_idx"),
            models.Index(fields=["status", "risk_level"], name="merchant_status_risk_idx"),
            models.Index(fields=["contact_email_index"], name="merchant_contact_email_bidx"),
            models.Index(fields=["tax_id_index"], name="merchant_tax_id_bidx"),
        ]

    CONTACT_FIELDS = ("contact_name", "contact_email", "contact_phone")
    CONTACT_SCOPE = "payments.merchant.contact"

    def __str__(self) -> str:
        return self.trading_name or self.legal_name

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        key_made_before_insert = False
        if update_fields is None or set(update_fields) & set(self.CONTACT_FIELDS):
            created = self._ensure_contact_subject()
            key_made_before_insert = created and self.pk is None
            if created and update_fields is not None:
                kwargs["update_fields"] = {
                    *update_fields,
                    *self.CONTACT_FIELDS,
                    "contact_subject",
                    "contact_email_index",
                }
        super().save(*args, **kwargs)
        if key_made_before_insert and self.contact_subject_id is not None:
            # The key learns which record it serves.
            SubjectKey.objects.filter(pk=self.contact_subject_id).update(object_id=str(self.pk))

    def _ensure_contact_subject(self) -> bool:
        """Give the contact person's new values their person's key: the current one while the
        email names the same person and the key is live, else a new one (a new contact person,
        or the data of the previous one erased). True when a new key was made."""
        values = [getattr(self, name) for name in self.CONTACT_FIELDS]
        fresh = [v for v in values if v and not isinstance(v, EncryptedStr)]
        if self.contact_subject_id is not None and not fresh:
            return False  # nothing to encrypt anew: every value is as it was read
        index_field = cast(BlindIndexField, self._meta.get_field("contact_email_index"))
        email = self.contact_email or ""
        same_person = (
            self.contact_subject_id is not None
            and bool(email)
            and self.contact_email_index in blind_index_candidates(index_field.normalise(email))
            and not subjects.is_erased(self.contact_subject_id)
        )
        if same_person:
            return False
        self.contact_subject_id = subjects.create(
            scope=self.CONTACT_SCOPE,
            email_index=index_field.index_of(email),
            object_id=str(self.pk or ""),
        )
        for name, value in zip(self.CONTACT_FIELDS, values, strict=True):
            # Values kept from the previous person are sealed again under the new key; an
            # erased one is gone for good.
            if isinstance(value, ErasedStr):
                setattr(self, name, "")
            elif isinstance(value, EncryptedStr):
                setattr(self, name, str(value))
        return True

    @property
    def can_take_payments(self) -> bool:
        return self.status == self.Status.ACTIVE

    def clean(self) -> None:
        # The console's change form: the error next to the box (the constraint holds the rest).
        if self.payouts_enabled and self.verified_payout_account_id is None:
            raise ValidationError(
                {
                    "payouts_enabled": "Payouts need a payout account verified by "
                    "micro-deposits: the merchant adds one through the API and confirms the "
                    "two amounts."
                }
            )


class PaymentStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FAILED = "failed"
    CANCELED = "canceled"


class Payment(StatusMachineMixin, Timestamped, AuditedModel):
    Status = PaymentStatus

    STATUS_TRANSITIONS = {
        Status.PENDING: frozenset(
            {Status.PROCESSING, Status.AUTHORIZED, Status.CAPTURED, Status.FAILED, Status.CANCELED}
        ),
        Status.PROCESSING: frozenset(
            {Status.AUTHORIZED, Status.CAPTURED, Status.FAILED, Status.CANCELED}
        ),
        Status.AUTHORIZED: frozenset({Status.CAPTURED, Status.FAILED, Status.CANCELED}),
        # Money taken is never "failed": a settlement the bank declines after capture (Braintree
        # settlement_declined) is left captured for a person (see payments/inbox/handlers.py).
        Status.CAPTURED: frozenset({Status.PARTIALLY_REFUNDED, Status.REFUNDED}),
        # Any number of partial refunds keep it here (a save, not a move) until fully refunded.
        Status.PARTIALLY_REFUNDED: frozenset({Status.REFUNDED}),
        Status.REFUNDED: frozenset(),
        # A failed attempt is not the end of a Stripe PaymentIntent: it waits in
        # requires_payment_method and a later attempt on it can still succeed. Only a newer
        # gateway event makes this move (services.payment_apply_gateway_state compares event
        # times); a Braintree transaction, once declined, never reports success.
        Status.FAILED: frozenset({Status.PROCESSING, Status.AUTHORIZED, Status.CAPTURED}),
        Status.CANCELED: frozenset(),
    }
    REFUNDABLE = frozenset({Status.CAPTURED, Status.PARTIALLY_REFUNDED})

    merchant = models.ForeignKey(Merchant, models.PROTECT, related_name="payments")
    gateway = models.CharField(max_length=16, choices=Gateway.choices)
    gateway_reference = models.CharField(
        max_length=128, blank=True, help_text="PaymentIntent id (Stripe) or transaction id"
    )
    charge_reference = models.CharField(
        max_length=128,
        blank=True,
        help_text="Stripe charge id (ch_…): disputes and older refund events name only the charge",
    )
    client_key = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="SHA-256 of the caller's Idempotency-Key in its scope: a retried create "
        "finds this row again instead of charging twice",
    )
    gateway_event_at = models.DateTimeField(
        null=True, blank=True, help_text="creation time of the newest gateway event applied"
    )
    amount = models.PositiveBigIntegerField(help_text="minor units of the currency")
    currency = models.CharField(max_length=3, help_text="ISO 4217, e.g. EUR")
    captured_amount = models.PositiveBigIntegerField(default=0)
    refunded_amount = models.PositiveBigIntegerField(
        default=0, help_text="refunds pending or succeeded, kept by the refund services"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    # Personal data: encrypted at rest; the operations screens find it by its blind index.
    customer_email = EncryptedEmailField(blank=True)
    customer_email_index = BlindIndexField(source="customer_email", lowercase=True)
    description = models.CharField(max_length=255, blank=True)

    class Meta(AuditedModel.Meta):
        ordering = ["-created_at", "-pk"]
        constraints = [
            unique_when_set(["gateway", "gateway_reference"], "payment_gateway_reference_unique"),
            unique_when_set(["merchant", "client_key"], "payment_client_key_unique_per_merchant"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            matches("currency", CURRENCY_CODE, "payment_currency_iso4217"),
            models.CheckConstraint(
                condition=Q(captured_amount__lte=F("amount")), name="payment_captured_within_amount"
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=F("captured_amount")),
                name="payment_refunded_within_captured",
            ),
            models.CheckConstraint(
                condition=Q(card_last4="") | Q(card_last4__regex=r"^[0-9]{4}$"),
                name="payment_card_last4_digits",
            ),
            choice_valid("gateway", Gateway, "payment_gateway_valid"),
            choice_valid("status", PaymentStatus, "payment_status_valid"),
        ]
        indexes = [
            models.Index(fields=["merchant", "-created_at"], name="payment_merchant_created_idx"),
            models.Index(fields=["status", "-created_at"], name="payment_status_created_idx"),
            models.Index(fields=["-created_at", "-id"], name="payment_created_idx"),
            models.Index(fields=["customer_email_index"], name="payment_customer_email_bidx"),
            models.Index(fields=["gateway_reference"], name="payment_gateway_ref_idx"),
            models.Index(fields=["charge_reference"], name="payment_charge_ref_idx"),
        ]

    def __str__(self) -> str:
        return f"Payment {self.pk} ({self.amount} {self.currency})"

    @property
    def refundable_amount(self) -> int:
        return self.captured_amount - self.refunded_amount


class RefundStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Refund(StatusMachineMixin, Timestamped, AuditedModel):
    Status = RefundStatus

    class Reason(models.TextChoices):
        REQUESTED_BY_CUSTOMER = "requested_by_customer"
        DUPLICATE = "duplicate"
        FRAUDULENT = "fraudulent"
        OTHER = "other"

    STATUS_TRANSITIONS = {
        Status.PENDING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED}),
        # Stripe documents a rare succeeded -> failed; it is not applied here but held for a
        # person (services.GatewayStateNeedsAttention), so the books never move backwards.
        Status.SUCCEEDED: frozenset(),
        Status.FAILED: frozenset(),
        Status.CANCELED: frozenset(),
    }
    # Refunds in these states hold part of the payment's captured amount.
    HOLDING = frozenset({Status.PENDING, Status.SUCCEEDED})

    payment = models.ForeignKey(Payment, models.PROTECT, related_name="refunds")
    amount = models.PositiveBigIntegerField(help_text="minor units of the payment's currency")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=32, choices=Reason.choices)
    reason_detail = models.TextField(blank=True)
    gateway_reference = models.CharField(max_length=128, null=True, blank=True, unique=True)
    gateway_event_at = models.DateTimeField(
        null=True, blank=True, help_text="creation time of the newest gateway event applied"
    )
    requested_by = optional_user()
    FAILURE_REASON_MAX = 500
    failure_reason = models.CharField(
        max_length=FAILURE_REASON_MAX,
        blank=True,
        help_text="why the gateway refused it (or why it could not be sent), as staff read it",
    )

    class Meta(AuditedModel.Meta):
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            choice_valid("status", RefundStatus, "refund_status_valid"),
        ]
        indexes = [
            models.Index(fields=["payment", "status"], name="refund_payment_status_idx"),
            models.Index(fields=["-created_at"], name="refund_created_idx"),
        ]

    def __str__(self) -> str:
        return f"Refund {self.pk} of payment {self.payment_id}"


class ChargebackStatus(models.TextChoices):
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    ACCEPTED = "accepted"
    EXPIRED = "expired"


class Chargeback(StatusMachineMixin, Timestamped, AuditedModel):
    Status = ChargebackStatus

    STATUS_TRANSITIONS = {
        Status.NEEDS_RESPONSE: frozenset(
            {Status.UNDER_REVIEW, Status.WON, Status.LOST, Status.ACCEPTED, Status.EXPIRED}
        ),
        Status.UNDER_REVIEW: frozenset({Status.WON, Status.LOST}),
        Status.WON: frozenset(),
        # A closed dispute never reopens; only a loss can still turn into a win, when the
        # gateway reinstates the funds (Stripe charge.dispute.funds_reinstated, Braintree
        # dispute_won after dispute_lost).
        Status.LOST: frozenset({Status.WON}),
        Status.ACCEPTED: frozenset(),
        # Expired records that the reply date passed without our evidence (chargebacks_daily,
        # or Braintree): the network's outcome still follows, Stripe's as lost (or won).
        Status.EXPIRED: frozenset({Status.LOST, Status.WON}),
    }
    OPEN = frozenset({Status.NEEDS_RESPONSE, Status.UNDER_REVIEW})

    payment = models.ForeignKey(Payment, models.PROTECT, related_name="chargebacks")
    gateway = models.CharField(max_length=16, choices=Gateway.choices)
    gateway_reference = models.CharField(max_length=128)
    reason = models.CharField(max_length=64)
    amount = models.PositiveBigIntegerField(help_text="minor units of the payment's currency")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEEDS_RESPONSE)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    gateway_event_at = models.DateTimeField(
        null=True, blank=True, help_text="creation time of the newest gateway event applied"
    )
    assignee = optional_user("assigned_chargebacks")

    class Meta(AuditedModel.Meta):
        ordering = ["evidence_due_by", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "gateway_reference"], name="chargeback_gateway_reference_unique"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="chargeback_amount_positive"),
            matches("currency", CURRENCY_CODE, "chargeback_currency_iso4217"),
            choice_valid("status", ChargebackStatus, "chargeback_status_valid"),
        ]
        indexes = [
            models.Index(fields=["status", "evidence_due_by"], name="chargeback_status_due_idx"),
            models.Index(fields=["payment"], name="chargeback_payment_idx"),
        ]

    def __str__(self) -> str:
        return f"Chargeback {self.gateway_reference}"


class WebhookEvent(AuditedModel):
    """A gateway's notification exactly as received. Untrusted input: the payload is whatever
    the sender posted, kept for replay and evidence, and only acted on after verification."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSING = "processing"
        PROCESSED = "processed"
        IGNORED = "ignored"
        FAILED = "failed"

    provider = models.CharField(max_length=16, choices=Gateway.choices)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField(help_text="the parsed body; NUL characters escaped")
    raw_body = models.TextField(blank=True, help_text="the body exactly as received")
    signature = models.TextField(
        blank=True, help_text="the signature as received (Stripe-Signature or bt_signature)"
    )
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    event_created_at = models.DateTimeField(
        null=True, blank=True, help_text="when the gateway created the event"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when the sweep runs it (again); empty once processed or its attempts are spent",
    )
    last_error = models.TextField(blank=True)

    class Meta(AuditedModel.Meta):
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "event_id"], name="webhook_event_unique_per_provider"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="webhook_status_received_idx"),
            models.Index(fields=["-received_at"], name="webhook_received_idx"),
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(next_attempt_at__isnull=False),
                name="webhook_next_attempt_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id}"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalRequest(AuditedModel):
    """Maker-checker: an action that one person requests and a second one approves.

    The requester can never be the approver (the database holds that too); a pending request
    expires; executing the action happens in the approval's own transaction, once.
    """

    Status = ApprovalStatus

    # An approval kind's action; the apps declare the kinds (settings.APPROVAL_KINDS).
    action = models.CharField(max_length=32)
    target_type = models.CharField(max_length=64, help_text="app_label.model")
    target_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True, help_text="what the action needs")
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey("auth.User", models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    decided_by = optional_user()
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta(AuditedModel.Meta):
        ordering = ["-requested_at", "-pk"]
        permissions = [
            ("approve_refund", "Can approve refunds above the threshold"),
            ("approve_chargeback_accept", "Can approve accepting a chargeback"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(decided_by=F("requested_by")), name="approval_not_by_requester"
            ),
            models.UniqueConstraint(
                fields=["action", "target_type", "target_id"],
                condition=Q(status="pending"),
                name="approval_one_pending_per_target",
            ),
            choice_valid("status", ApprovalStatus, "approval_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="approval_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.target_type}:{self.target_id}"

    def get_action_display(self) -> str:
        from .core.approvals import approval_kinds

        kind = approval_kinds().get(self.action)
        return kind.label if kind else self.action


def evidence_upload_to(instance: EvidenceFile, filename: str) -> str:
    import secrets

    # The uploaded name never reaches the disk: no traversal, nothing guessable.
    return f"evidence/{instance.evidence_id}/{secrets.token_hex(16)}"


class ChargebackEvidence(AuditedModel):
    """What we answer a chargeback with: a draft, editable until it is submitted, once."""

    chargeback = models.OneToOneField(Chargeback, models.PROTECT, related_name="evidence")
    # Evidence names the customer (email, address, what they bought): encrypted at rest.
    text = EncryptedTextField(blank=True)
    updated_by = optional_user()
    updated_at = models.DateTimeField(auto_now=True)
    submitted_by = optional_user()
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta(AuditedModel.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(submitted_at__isnull=True) | Q(submitted_by__isnull=False),
                name="evidence_submission_names_who",
            ),
        ]

    def __str__(self) -> str:
        return f"Evidence for {self.chargeback}"

    @property
    def is_submitted(self) -> bool:
        return self.submitted_at is not None


class EvidenceFile(AuditedModel):
    evidence = models.ForeignKey(ChargebackEvidence, models.PROTECT, related_name="files")
    file = models.FileField(upload_to=evidence_upload_to, max_length=200)
    original_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    content_type = models.CharField(max_length=32)
    uploaded_by = models.ForeignKey("auth.User", models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta(AuditedModel.Meta):
        ordering = ["uploaded_at", "pk"]
        constraints = [
            *stored_file_checks(
                sha256_name="evidence_file_sha256_hex", size_name="evidence_file_size_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.original_name or f"file {self.pk}"


class ApiToken(Created, AuditedModel):
    """A credential for an integration. Only its prefix is kept in clear (to find it); the
    secret part is stored as its SHA-256, so a copy of the database cannot be replayed. A token
    acts as its owner (the audit trail's actor); a merchant-bound token sees only that
    merchant's data, a staff token (no merchant) whatever its scopes and its owner allow."""

    SCOPES = (
        "merchants:read",
        "merchants:write",
        "merchants:contact",
        "payments:read",
        "payments:write",
        "kyc:read",
        "kyc:write",
        "audit:read",
    )

    name = models.CharField(max_length=100, help_text="what the token is for")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(
        max_length=64, editable=False, help_text="SHA-256 of the whole token, hex"
    )
    owner = models.ForeignKey("auth.User", models.PROTECT, related_name="api_tokens")
    merchant = models.ForeignKey(
        Merchant,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="api_tokens",
        help_text="empty: a staff token",
    )
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta(AuditedModel.Meta):
        ordering = ["-created_at", "-pk"]
        constraints = [
            sha256_hex("digest", "api_token_digest_hex"),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("created_at")), name="api_token_expires_after_created"
            ),
        ]
        indexes = [models.Index(fields=["owner", "-created_at"], name="api_token_owner_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class IdempotencyRecord(Created):
    """The first answer to a request made with an `Idempotency-Key`, replayed to retries.

    One row per owner and key (the unique constraint decides a race: the second insert fails
    and that request answers 409 while the first is in flight). Not audited: it holds a copy of
    a response, the change itself is audited where it happened."""

    key = models.CharField(max_length=255)
    owner = models.ForeignKey("auth.User", models.CASCADE, related_name="+")
    scope = models.CharField(
        max_length=32, default="staff", help_text="'merchant:<id>' for a merchant-bound token"
    )
    endpoint = models.CharField(max_length=200, help_text="method and path")
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request body")
    in_flight = models.BooleanField(default=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "scope", "endpoint", "key"],
                name="idempotency_key_unique_per_caller_endpoint",
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.key}"


class ReconcileRun(models.Model):
    """One `reconcile` pass over a gateway: what it checked, what it fixed (each fix is also in
    the audit trail) and the differences it could not fix, for a person on the operations
    screens. A report, written once by the command; not a regulated record."""

    gateway = models.CharField(max_length=16, choices=Gateway.choices)
    since = models.DateTimeField(help_text="objects created from this time were compared")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    checked = models.PositiveIntegerField(default=0)
    fixed = models.JSONField(default=list, blank=True)
    differences = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [
            models.Index(fields=["gateway", "-started_at"], name="reconcile_run_gateway_idx")
        ]

    def __str__(self) -> str:
        return f"reconcile {self.gateway} {self.started_at:%Y-%m-%d %H:%M}"


class PaymentDailyRollup(models.Model):
    """One UTC day's payments and refunds for one merchant, gateway and currency, summed by
    `payments.services.rollups.rollups_refresh` so the overview never scans the payments table.

    Derived data, not a regulated record: not audited (every payment and refund it counts is),
    rebuilt whole for a day by the service, so a wrong row is fixed by refreshing its day.
    Payments count on the day they were created, in the outcome of their status when the day
    was last refreshed; refunds count on the day they were requested."""

    day = models.DateField()
    merchant = models.ForeignKey(Merchant, models.CASCADE, related_name="+")
    # No choices check: a roll-up keeps whatever gateway its payments name.
    gateway = models.CharField(max_length=16)
    currency = models.CharField(max_length=3)
    payments = models.PositiveIntegerField(default=0, help_text="payments created that day")
    succeeded = models.PositiveIntegerField(
        default=0, help_text="of them captured, partially refunded or refunded"
    )
    failed = models.PositiveIntegerField(default=0)
    canceled = models.PositiveIntegerField(default=0)
    open = models.PositiveIntegerField(
        default=0, help_text="pending, processing or authorized when last refreshed"
    )
    captured_amount = models.PositiveBigIntegerField(default=0, help_text="minor units")
    refunds = models.PositiveIntegerField(
        default=0, help_text="refunds requested that day, pending or succeeded"
    )
    refunded_amount = models.PositiveBigIntegerField(default=0, help_text="minor units")
    refunds_failed = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "gateway", "currency", "merchant"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "merchant", "gateway", "currency"],
                name="payment_rollup_one_per_day_key",
            ),
        ]
        # The unique index leads with the day: it serves the overview's day ranges too.

    def __str__(self) -> str:
        return f"{self.day} {self.gateway} {self.currency} merchant {self.merchant_id}"


class SandboxObjectKind(models.TextChoices):
    PAYMENT = "payment"
    REFUND = "refund"
    DISPUTE = "dispute"
    EVENT = "event"
    CREDIT = "credit"  # a bank-rail credit (payments/rails/sandbox.py)


class SandboxObject(Timestamped):
    """The sandbox gateway's own store (payments/gateways/sandbox.py): what a real gateway would
    hold on its side (payments, refunds, disputes, and the webhook events it sends us). Not ours
    and not audited: it stands in for Stripe's database. Never a card number: brand and last
    four only."""

    Kind = SandboxObjectKind

    kind = models.CharField(max_length=8, choices=Kind.choices)
    reference = models.CharField(max_length=64, unique=True)
    parent = models.CharField(
        max_length=64, blank=True, help_text="the payment a refund, dispute or event is about"
    )
    idempotency_key = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            unique_when_set(["kind", "idempotency_key"], "sandbox_object_idempotency_key_unique"),
            choice_valid("kind", SandboxObjectKind, "sandbox_object_kind_valid"),
        ]
        indexes = [models.Index(fields=["kind", "parent"], name="sandbox_object_parent_idx")]

    def __str__(self) -> str:
        return f"sandbox {self.kind} {self.reference}"


class PayoutAccountStatus(models.TextChoices):
    PENDING = "pending"  # the two micro-deposits are on their way
    # Sent: the merchant confirms the amounts.
    AWAITING_CONFIRMATION = "awaiting_confirmation", "Awaiting confirmation"
    VERIFIED = "verified"
    LOCKED = "locked"  # too many wrong confirmations
    EXPIRED = "expired"  # not confirmed within the window
    FAILED = "failed"  # a deposit was returned by the bank
    REPLACED = "replaced"  # the merchant added another account


class PayoutAccountScheme(models.TextChoices):
    IBAN = "iban", "IBAN"
    LOCAL = "local", "Account number and routing or sort code"


PAYOUT_ACCOUNT_LIVE = ["pending", "awaiting_confirmation", "verified"]


class PayoutAccount(StatusMachineMixin, Timestamped, AuditedModel):
    """A merchant's bank account for payouts, proven by two micro-deposits the merchant confirms
    (payments/services/payout_accounts.py). The account number is encrypted at rest and shown
    only as its last four; its blind index finds the same account on another merchant. Holds
    untrusted input: what the merchant typed, checked by the service before it is stored."""

    Status = PayoutAccountStatus
    Scheme = PayoutAccountScheme

    STATUS_TRANSITIONS = {
        Status.PENDING: frozenset(
            {Status.AWAITING_CONFIRMATION, Status.FAILED, Status.EXPIRED, Status.REPLACED}
        ),
        Status.AWAITING_CONFIRMATION: frozenset(
            {Status.VERIFIED, Status.LOCKED, Status.EXPIRED, Status.FAILED, Status.REPLACED}
        ),
        # A return can come days after the merchant confirmed: the account was not good.
        Status.VERIFIED: frozenset({Status.FAILED, Status.REPLACED}),
        Status.LOCKED: frozenset({Status.REPLACED}),
        Status.EXPIRED: frozenset({Status.REPLACED}),
        Status.FAILED: frozenset({Status.REPLACED}),
        Status.REPLACED: frozenset(),
    }

    merchant = models.ForeignKey(Merchant, models.PROTECT, related_name="payout_accounts")
    holder_name = EncryptedCharField(max_length=200)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2 of the bank")
    currency = models.CharField(max_length=3, help_text="ISO 4217 of the account")
    scheme = models.CharField(max_length=8, choices=Scheme.choices)
    account_number = EncryptedCharField(
        max_length=34, help_text="the IBAN, or the local account number; encrypted"
    )
    routing_code = models.CharField(
        max_length=11, blank=True, help_text="ABA routing number or sort code (local scheme)"
    )
    account_index = BlindIndexField(source="account_identity")
    last4 = models.CharField(max_length=4)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING)
    rail = models.CharField(max_length=16, help_text="the bank rail the deposits went through")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="wrong confirmations so far")
    expires_at = models.DateTimeField(help_text="the amounts must be confirmed before this")
    verified_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)

    class Meta(AuditedModel.Meta):
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant"],
                condition=Q(status__in=PAYOUT_ACCOUNT_LIVE),
                name="payout_account_one_live_per_merchant",
            ),
            # Two merchants adding one account at the same moment: the service's check by the
            # blind index cannot see the other's uncommitted row; this index can.
            models.UniqueConstraint(
                fields=["account_index"],
                condition=Q(status__in=PAYOUT_ACCOUNT_LIVE),
                name="payout_account_one_live_per_number",
            ),
            choice_valid("status", PayoutAccountStatus, "payout_account_status_valid"),
            choice_valid("scheme", PayoutAccountScheme, "payout_account_scheme_valid"),
            matches("country", COUNTRY_CODE, "payout_account_country_iso"),
            matches("currency", CURRENCY_CODE, "payout_account_currency_iso"),
            matches("last4", r"^[0-9A-Z]{4}$", "payout_account_last4"),
            models.CheckConstraint(
                condition=~Q(status="verified") | Q(verified_at__isnull=False),
                name="payout_account_verified_names_when",
            ),
            models.CheckConstraint(
                condition=Q(scheme="iban") | ~Q(routing_code=""),
                name="payout_account_local_has_routing",
            ),
        ]
        indexes = [
            models.Index(fields=["account_index"], name="payout_account_bidx"),
            models.Index(fields=["merchant", "-created_at"], name="payout_account_merchant_idx"),
            models.Index(
                fields=["expires_at"],
                condition=Q(status__in=["pending", "awaiting_confirmation"]),
                name="payout_account_open_expiry_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_scheme_display()} ••••{self.last4} ({self.currency})"

    @property
    def account_identity(self) -> str:
        """What the blind index is taken of: the same account however it was typed."""
        return f"{self.routing_code}/{self.account_number}" if self.account_number else ""

    @property
    def masked_number(self) -> str:
        return f"••••{self.last4}"


class MicroDepositStatus(models.TextChoices):
    REQUESTED = "requested"  # asked of the rail, no news yet
    SENT = "sent"
    SETTLED = "settled"
    RETURNED = "returned"


class MicroDeposit(StatusMachineMixin, Timestamped, AuditedModel):
    """One of the two small credits that prove a payout account. Its amount is the secret the
    merchant confirms: encrypted at rest, never shown in the console or the API."""

    Status = MicroDepositStatus

    STATUS_TRANSITIONS = {
        Status.REQUESTED: frozenset({Status.SENT, Status.SETTLED, Status.RETURNED}),
        Status.SENT: frozenset({Status.SETTLED, Status.RETURNED}),
        # A settled credit can still come back (a return after settlement).
        Status.SETTLED: frozenset({Status.RETURNED}),
        Status.RETURNED: frozenset(),
    }

    account = models.ForeignKey(PayoutAccount, models.PROTECT, related_name="deposits")
    amount = EncryptedCharField(max_length=2, help_text="1 to 99 minor units; encrypted")
    rail = models.CharField(max_length=16)
    rail_reference = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REQUESTED)
    rail_event_at = models.DateTimeField(
        null=True, blank=True, help_text="creation time of the newest rail event applied"
    )
    return_reason = models.CharField(max_length=64, blank=True)

    class Meta(AuditedModel.Meta):
        ordering = ["created_at", "pk"]
        constraints = [
            unique_when_set(["rail", "rail_reference"], "micro_deposit_rail_reference_unique"),
            choice_valid("status", MicroDepositStatus, "micro_deposit_status_valid"),
        ]
        indexes = [models.Index(fields=["account"], name="micro_deposit_account_idx")]

    def __str__(self) -> str:
        return f"Micro-deposit {self.pk} ({self.status})"


# The fraud rules engine's models live in their own module; imported here so Django finds them.
from .fraud.models import (  # noqa: E402, F401
    FraudAlert,
    FraudAlertNote,
    FraudEvaluation,
    FraudRule,
    FraudRuleHit,
    FraudSignal,
    MerchantAmountStats,
)
