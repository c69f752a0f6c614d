from __future__ import annotations

import hashlib

import factory
from django.core.files.base import ContentFile

from kyc.models import CaseNote, KycCase, KycDocument, ScreeningResult
from tests.factories import UserFactory
from tests.payments.factories import AtomicFactory, MerchantFactory

PDF_BYTES = b"%PDF-1.4\n%%EOF\n"


class KycCaseFactory(AtomicFactory):
    class Meta:
        model = KycCase

    merchant = factory.SubFactory(MerchantFactory, status="pending")
    kind = KycCase.Kind.KYB
    status = KycCase.Status.SUBMITTED


class KycDocumentFactory(AtomicFactory):
    class Meta:
        model = KycDocument

    case = factory.SubFactory(KycCaseFactory)
    document_type = KycDocument.DocumentType.COMPANY_REGISTRATION
    file = factory.LazyFunction(lambda: ContentFile(PDF_BYTES, name="upload"))
    sha256 = hashlib.sha256(PDF_BYTES).hexdigest()
    size = len(PDF_BYTES)
    content_type = KycDocument.ContentType.PDF


class CaseNoteFactory(AtomicFactory):
    class Meta:
        model = CaseNote

    case = factory.SubFactory(KycCaseFactory)
    author = factory.SubFactory(UserFactory)
    text = "Checked the registry extract."


class ScreeningResultFactory(AtomicFactory):
    """A hit not disposed yet (kyc.services.screening_result_dispose judges it)."""

    class Meta:
        model = ScreeningResult

    case = factory.SubFactory(KycCaseFactory)
    provider = "offline-list"
    screened_name = "Nordwind Shipping GmbH"
    matched_name = "Nordwind Shipping"
    list_name = "EU consolidated"
    category = ScreeningResult.Category.SANCTIONS
    score = 96
