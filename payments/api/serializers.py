"""Input and output serializers, kept apart. Outputs never carry a secret, a full card or
account number, or a file's contents: only the gateway's references and the last four."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework import serializers

from audits.crypto.reveal import reveal_state
from audits.masking import mask_name
from audits.models import PaymentAudit

from ..integration.permissions import may_see_contact
from ..integration.serializers import (
    ClosedInputSerializer,
    PersonalFieldsSerializer,
    RowOutputSerializer,
)
from ..models import (
    ApprovalRequest,
    Chargeback,
    Gateway,
    Merchant,
    MicroDeposit,
    Payment,
    PayoutAccount,
    Refund,
    RiskLevel,
)

PAN_LIKE = re.compile(r"^[\d\s-]{12,23}$")


# Personal data and company identifiers: only with the scope merchants:contact.
CONTACT_FIELDS = ("contact_name", "contact_email", "contact_phone", "tax_id", "registration_number")


class MerchantOutputSerializer(PersonalFieldsSerializer):
    """The contact person's fields only for a caller that may see them (scope
    merchants:contact, see integration.permissions.may_see_contact); left out otherwise."""

    personal_fields = CONTACT_FIELDS

    class Meta:
        model = Merchant
        fields = [
            "id",
            "legal_name",
            "trading_name",
            "country",
            "status",
            "risk_level",
            "contact_name",
            "contact_email",
            "contact_phone",
            "tax_id",
            "registration_number",
            "created_at",
            "updated_at",
        ]


class MerchantContactInputSerializer(ClosedInputSerializer):
    unknown_field = (
        "Only contact details change here; a merchant's status changes "
        "through KYC approval and the compliance screens."
    )

    contact_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    contact_email = serializers.EmailField(required=False)
    contact_phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    tax_id = serializers.CharField(max_length=32, required=False, allow_blank=True)
    registration_number = serializers.CharField(max_length=64, required=False, allow_blank=True)


class MerchantCreateInputSerializer(serializers.Serializer):
    legal_name = serializers.CharField(max_length=200)
    trading_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    country = serializers.RegexField(r"^[A-Za-z]{2}$", help_text="ISO 3166-1 alpha-2")
    contact_email = serializers.EmailField()
    contact_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    contact_phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    risk_level = serializers.ChoiceField(choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    tax_id = serializers.CharField(max_length=32, required=False, allow_blank=True)
    registration_number = serializers.CharField(max_length=64, required=False, allow_blank=True)


class PaymentOutputSerializer(RowOutputSerializer):
    class Meta:
        model = Payment
        fields = [
            "id",
            "merchant",
            "gateway",
            "gateway_reference",
            "amount",
            "currency",
            "captured_amount",
            "refunded_amount",
            "status",
            "card_brand",
            "card_last4",
            "customer_email",
            "description",
            "created_at",
            "updated_at",
        ]


class PaymentCreateInputSerializer(serializers.Serializer):
    merchant = serializers.IntegerField(
        required=False, min_value=1, help_text="required with a staff token; a merchant's own"
    )
    gateway = serializers.ChoiceField(
        choices=Gateway.choices,
        required=False,
        help_text="omitted: PAYMENTS_DEFAULT_GATEWAY (the sandbox in the demo)",
    )
    amount = serializers.IntegerField(
        min_value=1, max_value=10**12, help_text="minor units of the currency"
    )
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", help_text="ISO 4217, e.g. EUR")
    payment_method = serializers.CharField(
        max_length=255, help_text="the gateway's payment method token, e.g. pm_card_visa"
    )
    capture = serializers.BooleanField(default=True)
    customer_email = serializers.EmailField(required=False, allow_blank=True, default="")
    description = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default=""
    )
    card_fingerprint = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,64}$",
        required=False,
        default="",
        help_text="the gateway's fingerprint of the card (Stripe's card.fingerprint), for the "
        "fraud rules' card windows; never card data",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.setdefault("gateway", settings.PAYMENTS_DEFAULT_GATEWAY)
        return attrs

    def validate_payment_method(self, value: str) -> str:
        if PAN_LIKE.match(value):
            # Never let a card number reach our servers' logs or rows.
            raise serializers.ValidationError(
                "Send the gateway's payment method token, never a card number."
            )
        return value


class RefundCreateInputSerializer(serializers.Serializer):
    amount = serializers.IntegerField(min_value=1, max_value=10**12)
    reason = serializers.ChoiceField(choices=Refund.Reason.choices)
    reason_detail = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )


class RefundOutputSerializer(RowOutputSerializer):
    class Meta:
        model = Refund
        fields = ["id", "payment", "amount", "status", "reason", "reason_detail", "created_at"]


class ApprovalOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApprovalRequest
        fields = ["id", "action", "status", "target_type", "target_id", "expires_at"]


class ChargebackOutputSerializer(RowOutputSerializer):
    evidence_submitted_at = serializers.SerializerMethodField()

    class Meta:
        model = Chargeback
        fields = [
            "id",
            "payment",
            "gateway",
            "gateway_reference",
            "reason",
            "amount",
            "currency",
            "status",
            "evidence_due_by",
            "evidence_submitted_at",
            "created_at",
        ]

    def get_evidence_submitted_at(self, obj: Chargeback) -> Any:
        evidence = getattr(obj, "evidence", None) if hasattr(obj, "evidence") else None
        if evidence is None or evidence.submitted_at is None:
            return None
        return serializers.DateTimeField().to_representation(evidence.submitted_at)


class EvidenceInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=20_000, help_text="the answer to the dispute")
    submit = serializers.BooleanField(
        default=True, help_text="send it to the gateway now (once); false saves a draft"
    )


class EvidenceOutputSerializer(serializers.Serializer):
    chargeback = serializers.IntegerField(source="chargeback_id")
    text = serializers.CharField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()


class AuditQueryInputSerializer(serializers.Serializer):
    object_type = serializers.ChoiceField(
        choices=[
            "payments.merchant",
            "payments.payment",
            "payments.refund",
            "payments.chargeback",
        ]
    )
    object_id = serializers.CharField(max_length=64)


class AuditOutputSerializer(RowOutputSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = PaymentAudit
        fields = [
            "id",
            "created_at",
            "action_type",
            "object_type",
            "object_id",
            "user",
            "username",
            "ip_address",
            "device_id",
            "request_id",
            "before_state",
            "after_state",
        ]

    def to_representation(self, instance: PaymentAudit) -> dict[str, Any]:
        # The rows hold envelopes; an auditor reading the trail sees the values.
        data: dict[str, Any] = super().to_representation(instance)
        for key in ("before_state", "after_state"):
            data[key] = reveal_state(instance.object_type, data[key])
        return data


# --- Payout accounts (micro-deposit verification) ----------------------------------------------


class PayoutAccountCreateInputSerializer(serializers.Serializer):
    merchant = serializers.IntegerField(
        required=False, help_text="with a staff token; a merchant token acts for its own"
    )
    holder_name = serializers.CharField(max_length=200)
    country = serializers.CharField(min_length=2, max_length=2, help_text="of the bank, e.g. DE")
    currency = serializers.RegexField(
        r"^[A-Za-z]{3}$", help_text="ISO 4217 of the account, e.g. EUR"
    )
    account_number = serializers.CharField(
        max_length=42, help_text="an IBAN, or a US or UK account number; never echoed back"
    )
    routing_code = serializers.CharField(
        max_length=14,
        required=False,
        allow_blank=True,
        default="",
        help_text="ABA routing number (US) or sort code (UK); empty with an IBAN",
    )


class MicroDepositOutputSerializer(serializers.ModelSerializer):
    """A deposit's progress; never its amount (that is what the merchant confirms)."""

    class Meta:
        model = MicroDeposit
        fields = ["status", "return_reason", "updated_at"]


class PayoutAccountOutputSerializer(serializers.ModelSerializer):
    account_number = serializers.CharField(
        source="masked_number", help_text="masked: the last four only"
    )
    holder_name = serializers.SerializerMethodField()
    attempts_left = serializers.SerializerMethodField()
    deposits = MicroDepositOutputSerializer(many=True, read_only=True)

    class Meta:
        model = PayoutAccount
        fields = [
            "id",
            "merchant",
            "holder_name",
            "country",
            "currency",
            "scheme",
            "account_number",
            "routing_code",
            "status",
            "attempts",
            "attempts_left",
            "expires_at",
            "verified_at",
            "failure_reason",
            "deposits",
            "created_at",
        ]

    def get_holder_name(self, account: PayoutAccount) -> str:
        request = self.context.get("request")
        if request is not None and may_see_contact(request):
            return str(account.holder_name)
        return mask_name(account.holder_name)

    def get_attempts_left(self, account: PayoutAccount) -> int:
        if account.status != PayoutAccount.Status.AWAITING_CONFIRMATION:
            return 0
        return max(settings.PAYOUT_VERIFICATION_ATTEMPTS - account.attempts, 0)


class MerchantQueryInputSerializer(serializers.Serializer):
    merchant = serializers.IntegerField(required=False, help_text="with a staff token")


class PayoutAccountConfirmInputSerializer(serializers.Serializer):
    merchant = serializers.IntegerField(required=False, help_text="with a staff token")
    amounts = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=99),
        min_length=2,
        max_length=2,
        help_text="the two micro-deposits, in minor units, in any order",
    )


class MerchantPayoutsInputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()


class MerchantPayoutsOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Merchant
        fields = ["id", "payouts_enabled", "verified_payout_account"]
