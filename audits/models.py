"""The payment audit trail: one append-only, hash-chained row per change to a regulated record."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from .modelling import Created, choice_valid, optional_user, sha256_hex


class PaymentAudit(models.Model):
    """Before and after state of one change to a Merchant, Payment, Refund or Chargeback.

    Rows are never updated or deleted (database triggers refuse it). Each row belongs to one of
    AUDIT_CHAIN_SHARDS hash chains, chosen by the changed object, and carries the hash of its
    own content and of the previous row in that chain (see audits.chain).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # DO_NOTHING in Django, a real foreign key in the database: deleting a user with audit rows
    # reaches audits.users.refuse_deleting_user_with_history, which explains the refusal, and
    # the database refuses it even if that receiver were bypassed.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.DO_NOTHING,
        related_name="+",
        # payment_audit_user_idx (user, created_at) serves lookups by user: no second index
        # to write on every append.
        db_index=False,
        help_text="the person, or the system user for automated work",
    )
    action_type = models.CharField(max_length=50, help_text="source.model.action")
    object_type = models.CharField(max_length=64, help_text="app_label.model")
    object_id = models.CharField(max_length=64)
    before_state = models.JSONField(null=True, blank=True)
    after_state = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField()
    device_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (seed schema)
    request_id = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    chain = models.PositiveSmallIntegerField()
    seq = models.PositiveBigIntegerField()
    prev_hash = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=64)

    class Meta:
        db_table = "payment_audits"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="payment_audit_chain_seq_unique"),
            models.CheckConstraint(condition=Q(seq__gte=1), name="payment_audit_seq_positive"),
        ]
        indexes = [
            models.Index(
                fields=["object_type", "object_id", "created_at"], name="payment_audit_object_idx"
            ),
            models.Index(fields=["user", "created_at"], name="payment_audit_user_idx"),
            models.Index(fields=["created_at"], name="payment_audit_created_idx"),
            # The search by IP, newest first: by (ip_address) alone a page merged every
            # partition's rows by date and dropped those of other addresses.
            models.Index(fields=["ip_address", "created_at"], name="payment_audit_ip_idx"),
            # The search by device, newest first. "Action contains" is served on PostgreSQL by
            # a trigram index, payment_audit_action_trgm (0005_audit_trail_at_scale).
            models.Index(fields=["device_id", "created_at"], name="payment_audit_device_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action_type} {self.object_type}:{self.object_id}"


class AuditChainHead(models.Model):
    """The last sequence number and hash of each chain: the row a writer locks to append."""

    chain = models.PositiveSmallIntegerField(primary_key=True)
    seq = models.PositiveBigIntegerField(default=0)
    prev_hash = models.CharField(max_length=64, help_text="the hash before the last row's")
    last_hash = models.CharField(max_length=64)

    class Meta:
        db_table = "payment_audit_chain_heads"

    def __str__(self) -> str:
        return f"{self.chain}:{self.seq}:{self.last_hash}"


class AuditCheckpoint(models.Model):
    """The heads of every chain at one moment, signed (Ed25519) after the rows up to them were
    verified: verification starts from the newest checkpoint whose signature holds. Append-only
    like the rows (database triggers refuse UPDATE, DELETE and TRUNCATE)."""

    created_at = models.DateTimeField(help_text="when the heads were read; part of the signature")
    heads = models.JSONField(help_text='{"chain": [seq, row_hash]} for every chain')
    rows = models.PositiveBigIntegerField(help_text="rows in the chains up to these heads")
    key_id = models.CharField(max_length=16, help_text="which public key verifies the signature")
    signature = models.CharField(max_length=100, help_text="Ed25519, URL-safe base64")

    class Meta:
        db_table = "payment_audit_checkpoints"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["created_at"], name="payment_audit_checkpoint_idx")]

    def __str__(self) -> str:
        return f"Checkpoint {self.pk} at {self.created_at:%Y-%m-%d %H:%M} UTC ({self.rows} rows)"


class AuditDetachment(Created):
    """One month partition of payment_audits detached to cold storage (audits.cold_storage):
    its rows are in an exported file, and each chain's head at the detach point is where the
    verification of the rows still attached starts. Append-only like the rows."""

    month = models.DateField(unique=True, help_text="the first day of the month detached")
    partition = models.CharField(max_length=63)
    rows = models.PositiveBigIntegerField()
    file_name = models.CharField(max_length=255, help_text="the exported rows (evidence format)")
    file_sha256 = models.CharField(max_length=64)
    boundary = models.JSONField(
        help_text='{"chain": [seq, row_hash]}: every chain\'s last row in cold storage'
    )
    # Its id, not a foreign key: the checkpoints table must stay truncatable by nobody but
    # its triggers (a foreign key would refuse TRUNCATE with a different reason).
    checkpoint_pk = models.PositiveBigIntegerField(
        help_text="the signed checkpoint that covered every row detached"
    )

    class Meta:
        db_table = "payment_audit_detachments"
        ordering = ["-month"]

    def __str__(self) -> str:
        return f"{self.partition} detached ({self.rows} rows)"


class ChainVerificationSource(models.TextChoices):
    COMMAND = "command"
    TASK = "task"


class ChainVerification(Created):
    """One run of the hash-chain verification (verify_audit_chain, or beat's daily task): what
    monitoring reads as the chain's verification age and result. Written once, never changed."""

    Source = ChainVerificationSource

    source = models.CharField(max_length=8, choices=Source.choices)
    ok = models.BooleanField()
    rows_checked = models.PositiveBigIntegerField()
    chains = models.PositiveIntegerField()
    first_problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            choice_valid("source", ChainVerificationSource, "chain_verification_source_valid"),
            models.CheckConstraint(
                condition=Q(ok=True, first_problem="") | Q(ok=False),
                name="chain_verification_ok_has_no_problem",
            ),
        ]
        indexes = [models.Index(fields=["-created_at"], name="chain_verification_created_idx")]

    def __str__(self) -> str:
        outcome = "ok" if self.ok else "FAILED"
        return f"Chain verification {self.created_at:%Y-%m-%d %H:%M} UTC: {outcome}"


class ComplianceReport(Created):
    """One run of the PCI DSS compliance report (audits/compliance/), kept with its date so an
    assessor sees the history. Written once, never changed."""

    created_by = optional_user()
    source = models.CharField(max_length=16, help_text="web, command or task")
    findings = models.JSONField(help_text="requirement, title, status, evidence, fix per check")
    passed = models.PositiveSmallIntegerField()
    failed = models.PositiveSmallIntegerField()
    unknown = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [("run_compliancereport", "Can run the compliance report")]

    def __str__(self) -> str:
        return f"Compliance report {self.created_at:%Y-%m-%d %H:%M} UTC"

    @property
    def ok(self) -> bool:
        return self.failed == 0


class SubjectKey(models.Model):
    """One person's own data key, for crypto-shredding (GDPR art. 17).

    The personal data of one person in one role (a merchant's contact person) is encrypted
    with data keys wrapped by this key instead of by the KEK; the key itself is wrapped by the
    KEK. Erasure empties `wrapped_key`: every copy of that person's data, the rows of both audit
    trails included, becomes unreadable while the rows and their hashes stay as they were.
    Deliberately outside both audit trails: a trail row holding the wrapped key would survive
    the erasure. The erasure itself is recorded in the security trail.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    scope = models.CharField(max_length=64, help_text="whose data: app_label.model.role")
    object_id = models.CharField(max_length=64, blank=True, help_text="the record naming them")
    email_index = models.CharField(
        max_length=64, blank=True, help_text="blind index of the person's email, to find them"
    )
    kek_id = models.CharField(max_length=64, help_text="the key-encryption key wrapping it")
    wrapped_key = models.BinaryField(editable=False, help_text="empty once erased")
    created_at = models.DateTimeField(auto_now_add=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    erased_by = optional_user()
    erasure_reason = models.TextField(blank=True)

    class Meta:
        db_table = "subject_keys"
        indexes = [
            models.Index(fields=["email_index"], name="subject_keys_email_idx"),
            models.Index(fields=["scope", "object_id"], name="subject_keys_object_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(erased_at__isnull=True) | Q(wrapped_key=b""),
                name="subject_key_erased_means_no_key",
            ),
        ]

    def __str__(self) -> str:
        state = "erased" if self.erased_at else "live"
        return f"{self.scope} {self.object_id} ({state})"


class KnownDevice(models.Model):
    """A device a staff person, an API token or a merchant has been seen on: the server-side
    fingerprint (browser and OS family, first language, client hints, IP network /24 or /48)
    combined with the client's device id, hashed (audits/devices.py). The summary keeps the
    readable parts, never the raw user agent or device id. Bookkeeping, not a regulated record:
    a new device is written to the security trail, where it cannot be edited."""

    subject = models.CharField(
        max_length=80, help_text="'auth.user:<id>', 'payments.apitoken:<id>', …"
    )
    fingerprint = models.CharField(max_length=64, help_text="SHA-256, hex")
    network = models.CharField(max_length=64, blank=True)
    summary = models.JSONField(default=dict)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject", "fingerprint"], name="known_device_one_per_subject"
            ),
            sha256_hex("fingerprint", "known_device_fp_hex"),
        ]
        indexes = [
            models.Index(fields=["subject", "network"], name="known_device_subject_net"),
            models.Index(fields=["subject", "-last_seen"], name="known_device_subject_seen"),
        ]

    def __str__(self) -> str:
        s = self.summary
        return f"{s.get('browser', '?')} on {s.get('os', '?')} from {self.network or '?'}"


class StaffActivityKind(models.TextChoices):
    EXPORT = "export"
    DOCUMENT_DOWNLOAD = "document_download", "Document download"
    APPROVAL = "approval"
    REFUND = "refund"
    SIGNIN = "signin", "Sign-in"


class StaffActivity(models.Model):
    """One sensitive act by a staff person (an export, a document download, an approval, a
    refund, a sign-in), counted by the staff behaviour rules (audits/behaviour.py). Bookkeeping:
    the act itself is in the audit trail; an unusual pattern is written to the security trail."""

    Kind = StaffActivityKind

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=StaffActivityKind.choices)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-pk"]
        constraints = [
            choice_valid("kind", StaffActivityKind, "staff_activity_kind_valid"),
        ]
        indexes = [models.Index(fields=["user", "kind", "at"], name="staff_activity_user_kind_at")]

    def __str__(self) -> str:
        return f"{self.kind} by user {self.user_id}"
