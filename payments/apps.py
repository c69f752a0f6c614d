from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        from audits.registry import register_audited

        from . import models

        register_audited(models.Merchant, payment_audit=True, mask_fields=["contact_phone"])
        register_audited(models.Payment, payment_audit=True, mask_fields=["customer_email"])
        register_audited(models.Refund, payment_audit=True)
        register_audited(models.Chargeback, payment_audit=True)
        # The payload and raw body are the gateway's event: they may carry customer details.
        register_audited(models.WebhookEvent, exclude_fields=["payload", "raw_body"])
        register_audited(models.ApprovalRequest)
        # Every step of a bank verification; the account number and the amounts are encrypted
        # fields, so the trails hold their envelopes only.
        register_audited(models.PayoutAccount, payment_audit=True)
        register_audited(models.MicroDeposit)
        register_audited(models.ChargebackEvidence)
        register_audited(models.EvidenceFile, mask_fields=["file"])
        # Rules (every version), alerts and their notes: the fraud review's own records.
        register_audited(models.FraudRule)
        register_audited(models.FraudAlert)
        register_audited(models.FraudAlertNote)
        # Never the hash; last use is bookkeeping recorded on every request, not a change.
        register_audited(models.ApiToken, exclude_fields=["digest", "last_used_at", "last_used_ip"])
        # Issuing and revoking a token is a privilege change: the security trail, on its owner.
        from audits.security import register_credential

        register_credential(
            models.ApiToken,
            owner_field="owner",
            fields=["name", "prefix", "scopes", "merchant_id", "expires_at"],
            revoked_field="revoked_at",
        )
