"""KYC (people) and KYB (businesses) cases, their documents and the analysts' notes."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.db import models
from django.db.models import Q

from audits.crypto.fields import EncryptedCharField
from audits.modelling import (
    AuthoredNote,
    Created,
    Timestamped,
    choice_valid,
    not_blank,
    optional_user,
    sha256_hex,
    stored_file_checks,
)
from audits.querysets import AuditedModel
from payments.core.state import StatusMachineMixin
from payments.models import RiskLevel

from .risk import CaseRisk, case_risk


def new_case_reference() -> str:
    return "KYC-" + secrets.token_hex(5).upper()


def document_upload_to(instance: KycDocument, filename: str) -> str:
    # The name a user gave is never used on disk: no traversal, no guessable paths.
    return f"kyc/{instance.case_id}/{secrets.token_hex(16)}"


# The approval kind of a four-eyes case's first approval (kyc/approvals.py declares it).
KYC_SECOND_APPROVAL = "kyc_approve"


class KycCaseStatus(models.TextChoices):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    NEEDS_INFORMATION = "needs_information"
    ESCALATED = "escalated"
    APPROVED = "approved"
    REJECTED = "rejected"


class KycCaseKind(models.TextChoices):
    KYC = "kyc", "KYC (person)"
    KYB = "kyb", "KYB (business)"


class KycCase(StatusMachineMixin, Timestamped, AuditedModel):
    Kind = KycCaseKind

    Status = KycCaseStatus

    class Decision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    STATUS_TRANSITIONS = {
        Status.DRAFT: frozenset({Status.SUBMITTED}),
        # An overdue case nobody took is escalated by the SLA task.
        Status.SUBMITTED: frozenset({Status.IN_REVIEW, Status.ESCALATED}),
        Status.IN_REVIEW: frozenset(
            {
                Status.NEEDS_INFORMATION,
                Status.ESCALATED,
                Status.APPROVED,
                Status.REJECTED,
                Status.SUBMITTED,
            }
        ),
        Status.NEEDS_INFORMATION: frozenset({Status.SUBMITTED}),
        Status.ESCALATED: frozenset({Status.IN_REVIEW, Status.APPROVED, Status.REJECTED}),
        Status.APPROVED: frozenset(),
        Status.REJECTED: frozenset(),
    }
    DECIDED = frozenset({Status.APPROVED, Status.REJECTED})

    reference = models.CharField(
        max_length=16, unique=True, default=new_case_reference, editable=False
    )
    merchant = models.ForeignKey("payments.Merchant", models.PROTECT, related_name="kyc_cases")
    kind = models.CharField(max_length=3, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    risk_score = models.PositiveSmallIntegerField(default=0, help_text="0 (none) to 100")
    assignee = optional_user("assigned_kyc_cases")
    submitted_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=8, choices=Decision.choices, blank=True)
    decided_by = optional_user("decided_kyc_cases")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    prepared_by = optional_user(help_text="the analyst who reviewed the case")
    information_request = models.TextField(blank=True, help_text="what the merchant must send")
    escalation_reason = models.TextField(blank=True)
    sla_paused_at = models.DateTimeField(
        null=True, blank=True, help_text="the clock stops while we wait for the merchant"
    )
    overdue_since = models.DateTimeField(null=True, blank=True)
    due_soon_notified_at = models.DateTimeField(null=True, blank=True)
    screening_hit = models.BooleanField(default=False)
    risk_factors = models.JSONField(
        default=list, blank=True, help_text="each factor and its points, as scored"
    )
    ownership_layers = models.PositiveSmallIntegerField(
        default=1, help_text="legal entities between the merchant and its owners"
    )

    class Meta(AuditedModel.Meta):
        ordering = ["due_at", "pk"]
        permissions = [
            ("decide_kyccase", "Can approve or reject a KYC case"),
            ("reassign_kyccase", "Can reassign a KYC case to another analyst"),
            ("download_kycdocument", "Can view and download KYC documents"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(risk_score__lte=100), name="kyc_case_risk_score_range"
            ),
            choice_valid("status", KycCaseStatus, "kyc_case_status_valid"),
            choice_valid("kind", KycCaseKind, "kyc_case_kind_valid"),
            # A decided case names its decision, who took it and when; an open one has none.
            models.CheckConstraint(
                condition=(
                    Q(
                        status__in=["approved", "rejected"],
                        decided_by__isnull=False,
                        decided_at__isnull=False,
                    )
                    & ~Q(decision="")
                )
                | (
                    ~Q(status__in=["approved", "rejected"])
                    & Q(decision="", decided_at__isnull=True)
                ),
                name="kyc_case_decision_matches_status",
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | ~Q(decision_reason=""),
                name="kyc_case_rejection_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "due_at"], name="kyc_case_status_due_idx"),
            models.Index(fields=["assignee", "status"], name="kyc_case_assignee_status_idx"),
            models.Index(fields=["merchant", "-created_at"], name="kyc_case_merchant_idx"),
            # The queue's "all" tab and the console list in their order (Meta.ordering): the
            # first page read from the index, not every case sorted.
            models.Index(fields=["due_at", "id"], name="kyc_case_due_idx"),
            # The console's date hierarchy starts from MIN and MAX of created_at.
            models.Index(fields=["created_at"], name="kyc_case_created_idx"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def risk(self) -> CaseRisk:
        """Score and level from the one scoring (kyc/risk.py), for every screen."""
        return case_risk(
            # Scored at submission; a case from before scoring may carry its factors only.
            scored=self.submitted_at is not None or bool(self.risk_factors),
            score=self.risk_score,
            level=self.risk_level,
            screening_hit=self.screening_hit,
        )

    @property
    def needs_four_eyes(self) -> bool:
        return self.risk.level == RiskLevel.HIGH or self.screening_hit

    def is_overdue(self, now: datetime | None = None) -> bool:
        from django.utils import timezone

        now = now or timezone.now()
        return (
            self.due_at is not None
            and self.sla_paused_at is None
            and self.status not in self.DECIDED
            and self.due_at < now
        )


class ScreeningCategory(models.TextChoices):
    SANCTIONS = "sanctions"
    PEP = "pep", "Politically exposed person"
    ADVERSE_MEDIA = "adverse_media", "Adverse media"


class ScreeningDisposition(models.TextChoices):
    PENDING = "pending", "Not disposed yet"
    TRUE_MATCH = "true_match", "True match"
    FALSE_POSITIVE = "false_positive", "False positive"


class ScreeningResult(Created, AuditedModel):
    """One name screened against one list entry: a near match is a hit for a person to judge."""

    Disposition = ScreeningDisposition

    Category = ScreeningCategory

    case = models.ForeignKey(KycCase, models.PROTECT, related_name="screening_results")
    provider = models.CharField(max_length=32)
    # A person's name when a contact or an owner was screened: encrypted at rest.
    screened_name = EncryptedCharField(max_length=200)
    matched_name = models.CharField(max_length=200)
    list_name = models.CharField(max_length=100)
    category = models.CharField(max_length=16, choices=Category.choices)
    score = models.PositiveSmallIntegerField(help_text="similarity, 0 to 100")
    source_id = models.CharField(
        max_length=200,
        blank=True,
        help_text="the list entry's id in its source (e.g. OpenSanctions)",
    )
    # A person's judgement of the hit: a case with an undisposed hit cannot be approved.
    disposition = models.CharField(
        max_length=16, choices=Disposition.choices, default=Disposition.PENDING
    )
    disposition_reason = models.TextField(blank=True)
    disposed_by = optional_user()
    disposed_at = models.DateTimeField(null=True, blank=True)

    class Meta(AuditedModel.Meta):
        ordering = ["case", "-score"]
        constraints = [
            models.CheckConstraint(condition=Q(score__lte=100), name="screening_score_range"),
            choice_valid("disposition", ScreeningDisposition, "screening_disposition_valid"),
            # A disposed hit names its reason, who judged it and when; an undisposed one none.
            models.CheckConstraint(
                condition=(
                    Q(disposition="pending", disposed_by__isnull=True, disposed_at__isnull=True)
                    & Q(disposition_reason="")
                )
                | (
                    ~Q(disposition="pending")
                    & Q(disposed_by__isnull=False, disposed_at__isnull=False)
                    & ~Q(disposition_reason="")
                ),
                name="screening_disposition_recorded",
            ),
        ]
        indexes = [
            models.Index(fields=["case", "disposition"], name="screening_case_disposition_idx")
        ]

    def __str__(self) -> str:
        # Not the screened name (it may be a person's): this text goes into the audit log.
        return f"Screening hit {self.pk}: ~ {self.matched_name} ({self.score})"


class ScreeningListFormat(models.TextChoices):
    OURS = "csv", "Our CSV (name, aliases, category, list)"
    TARGETS = "targets", "OpenSanctions targets.simple.csv"
    FTM = "ftm", "OpenSanctions FollowTheMoney JSON lines"


class ScreeningListLoad(AuditedModel):
    """One load of a screening list file into a feed, replacing the feed's entries whole. The
    newest load's id is the list version: each process rebuilds its in-memory index when it
    changes. Entries are reference data written in bulk; this row is the audited record."""

    Format = ScreeningListFormat

    feed = models.CharField(max_length=64, help_text="e.g. internal, opensanctions")
    format = models.CharField(max_length=8, choices=Format.choices)
    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    entry_count = models.PositiveIntegerField()
    name_count = models.PositiveIntegerField(help_text="names and aliases")
    skipped = models.PositiveIntegerField(default=0, help_text="rows of other schemas (vessels...)")
    loaded_at = models.DateTimeField()

    class Meta(AuditedModel.Meta):
        ordering = ["-pk"]
        constraints = [
            choice_valid("format", ScreeningListFormat, "screening_list_load_format_valid"),
            sha256_hex("sha256", "screening_list_load_sha256_hex"),
            not_blank("feed", "screening_list_load_feed_named"),
        ]

    def __str__(self) -> str:
        return f"{self.feed}: {self.file_name} ({self.entry_count} entries)"


class ScreeningListEntry(models.Model):
    """A person or organisation on a loaded list, with its names normalised for matching
    (kyc/screening.py, normalise)."""

    Category = ScreeningCategory

    load = models.ForeignKey(ScreeningListLoad, models.PROTECT, related_name="entries")
    feed = models.CharField(max_length=64)
    source_id = models.CharField(max_length=200, help_text="the entry's id in its source")
    name = models.CharField(max_length=500)
    aliases = models.JSONField(default=list, blank=True)
    normalised_name = models.CharField(max_length=500)
    normalised_aliases = models.JSONField(
        default=list, blank=True, help_text="in the order of aliases; empty where nothing is left"
    )
    list_name = models.CharField(max_length=100)
    category = models.CharField(max_length=16, choices=Category.choices)
    loaded_at = models.DateTimeField()

    class Meta:
        ordering = ["feed", "source_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["feed", "source_id"], name="screening_entry_unique_per_feed"
            ),
            choice_valid("category", ScreeningCategory, "screening_entry_category_valid"),
            not_blank("name", "screening_entry_name_not_empty"),
        ]
        indexes = [models.Index(fields=["normalised_name"], name="screening_entry_normalised_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.list_name})"


class KycDocumentContentType(models.TextChoices):
    """What a document's file may be: read from its content when it is uploaded
    (payments/core/uploads.py), never from its name."""

    PDF = "application/pdf", "PDF"
    PNG = "image/png", "PNG"
    JPEG = "image/jpeg", "JPEG"


class KycDocument(AuditedModel):
    class DocumentType(models.TextChoices):
        PASSPORT = "passport"
        NATIONAL_ID = "national_id"
        PROOF_OF_ADDRESS = "proof_of_address"
        COMPANY_REGISTRATION = "company_registration"
        OWNERSHIP_DECLARATION = "ownership_declaration"
        BANK_STATEMENT = "bank_statement"
        OTHER = "other"

    ContentType = KycDocumentContentType

    class ReviewStatus(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REJECTED = "rejected"
        REUPLOAD_REQUESTED = "reupload_requested"

    case = models.ForeignKey(KycCase, models.PROTECT, related_name="documents")
    document_type = models.CharField(max_length=32, choices=DocumentType.choices)
    file = models.FileField(upload_to=document_upload_to, max_length=200)
    original_name = models.CharField(
        max_length=255, blank=True, help_text="as uploaded, for display only"
    )
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField(help_text="bytes")
    content_type = models.CharField(max_length=32, choices=ContentType.choices)
    review_status = models.CharField(
        max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.PENDING
    )
    review_reason = models.TextField(blank=True)
    uploaded_by = optional_user()
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta(AuditedModel.Meta):
        ordering = ["case", "uploaded_at"]
        constraints = [
            *stored_file_checks(
                sha256_name="kyc_document_sha256_hex", size_name="kyc_document_size_positive"
            ),
            choice_valid(
                "content_type", KycDocumentContentType, "kyc_document_content_type_allowed"
            ),
        ]
        indexes = [models.Index(fields=["case", "review_status"], name="kyc_document_case_idx")]

    def __str__(self) -> str:
        return f"{self.get_document_type_display()} for {self.case_id}"


class CaseNote(AuthoredNote, AuditedModel):
    case = models.ForeignKey(KycCase, models.PROTECT, related_name="notes")

    class Meta(AuditedModel.Meta):
        ordering = ["case", "created_at"]
        constraints = [
            not_blank("text", "case_note_text_not_empty"),
        ]

    def __str__(self) -> str:
        return f"Note on {self.case_id} by {self.author_id}"


class OwnershipHeld(models.TextChoices):
    DIRECTLY = "direct", "Directly"
    INDIRECTLY = "indirect", "Through other companies"


# A beneficial owner holds at least 25 % (the EU AML directives' threshold), in basis points.
OWNERSHIP_THRESHOLD_BP = 2_500
WHOLE_BP = 10_000


class BeneficialOwner(Timestamped, AuditedModel):
    """A person owning at least 25 % of a merchant (KYB). Their personal data is encrypted at
    rest and shown masked to roles without payments.view_merchant_contact; their name is
    screened with the merchant's (kyc.screening.names_to_screen). Written only through
    kyc.services.beneficial_owner_add / beneficial_owner_update."""

    Held = OwnershipHeld

    merchant = models.ForeignKey(
        "payments.Merchant", models.PROTECT, related_name="beneficial_owners"
    )
    full_name = EncryptedCharField(max_length=200)
    date_of_birth = EncryptedCharField(max_length=10, help_text="YYYY-MM-DD")
    nationality = EncryptedCharField(max_length=2, help_text="ISO 3166-1 alpha-2, e.g. DE")
    residential_address = EncryptedCharField(max_length=300)
    ownership_bp = models.PositiveIntegerField(
        "ownership (basis points)", help_text="2500 = 25 %, 10000 = 100 %"
    )
    held = models.CharField(max_length=8, choices=Held.choices, default=Held.DIRECTLY)

    class Meta(AuditedModel.Meta):
        ordering = ["merchant", "-ownership_bp", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ownership_bp__gte=OWNERSHIP_THRESHOLD_BP, ownership_bp__lte=WHOLE_BP),
                name="beneficial_owner_share_range",
                violation_error_message="A beneficial owner holds from 25 % to 100 %.",
            ),
            choice_valid("held", OwnershipHeld, "beneficial_owner_held_valid"),
        ]

    def __str__(self) -> str:
        return f"Beneficial owner {self.pk} of merchant {self.merchant_id}"

    @property
    def ownership_percent(self) -> str:
        return f"{self.ownership_bp / 100:g} %"
