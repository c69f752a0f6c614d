"""Merchants and their KYC cases, driven through the real services by the demo staff, at the
dates they happened (the clock is moved with time-machine), so risk scores, SLA due dates,
screening hits and the audit trail are what the product itself would have made."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from kyc import services
from kyc.models import KycCase, ScreeningResult
from kyc.owners import beneficial_owner_add
from payments.models import Merchant
from payments.services.merchants import merchant_create, merchant_set_status

# A one-page PDF: enough for the upload checks (type sniffed from the content, hashed, sized).
TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
DOCUMENTS = [
    ("company_registration", "registry-extract.pdf"),
    ("proof_of_address", "utility-bill.pdf"),
    ("ownership_declaration", "beneficial-owners.pdf"),
]


@dataclass(frozen=True)
class DemoMerchant:
    legal_name: str
    trading_name: str
    country: str
    risk: str
    currency: str = "EUR"


@contextmanager
def at(moment: datetime.datetime) -> Iterator[None]:
    """Run a block as if the clock read `moment` (every timestamp, the audit trail's too)."""
    with time_machine.travel(moment, tick=False):
        yield


def company_number(spec: DemoMerchant, digits: int) -> str:
    """A made-up, stable number for the demo's tax id and registration number."""
    seed = int(hashlib.sha256(spec.legal_name.encode()).hexdigest(), 16)
    return str(seed % 10**digits).zfill(digits)


# Made-up people owning the demo's merchants (KYB); one is near a name on the screening list.
OWNERS = {
    "Shadow Trade": [("Aleksandr Orlov", "RU", 6_000), ("Eleni Kyriakou", "CY", 4_000)],
}
FIRST_NAMES = ["Anna", "Jonas", "Sofia", "Pieter", "Lucia", "Tomas", "Ines", "Mateo", "Freya"]
LAST_NAMES = ["Vermeulen", "Novak", "Lindqvist", "Moreau", "Keane", "Bauer", "Costa", "Ferreira"]


def demo_owners(spec: DemoMerchant) -> list[tuple[str, str, int]]:
    """(name, nationality, basis points) of a demo merchant's beneficial owners."""
    if spec.trading_name in OWNERS:
        return OWNERS[spec.trading_name]
    seed = int(company_number(spec, 6))
    first = f"{FIRST_NAMES[seed % 9]} {LAST_NAMES[seed % 8]}"
    if seed % 3 == 0:
        return [(first, spec.country, 10_000)]
    second = f"{FIRST_NAMES[(seed // 9) % 9]} {LAST_NAMES[(seed // 8 + 3) % 8]}"
    return [(first, spec.country, 5_500), (second, spec.country, 3_000)]


def add_owners(merchant: Merchant, spec: DemoMerchant, *, actor: Any) -> None:
    seed = int(company_number(spec, 6))
    for number, (name, nationality, share) in enumerate(demo_owners(spec), start=1):
        beneficial_owner_add(
            merchant=merchant,
            full_name=name,
            date_of_birth=datetime.date(
                1960 + (seed + number * 7) % 35, 1 + number * 5, 10 + number
            ),
            nationality=nationality,
            residential_address=f"{10 + (seed + number) % 80} Harbour Street, {spec.country}",
            ownership_bp=share,
            actor=actor,
        )


def create_merchant(spec: DemoMerchant, *, actor: Any) -> Merchant:
    slug = spec.trading_name.lower().replace(" ", "").replace("&", "")
    merchant = merchant_create(
        legal_name=spec.legal_name,
        trading_name=spec.trading_name,
        country=spec.country,
        risk_level=spec.risk,
        contact_name=f"{spec.trading_name} Finance",
        contact_email=f"finance@{slug}.example",
        contact_phone="+44 20 7946 0000",
        tax_id=f"{spec.country}{company_number(spec, 9)}",
        registration_number=f"{spec.country}-REG-{company_number(spec, 7)[::-1]}",
        actor=actor,
    )
    add_owners(merchant, spec, actor=actor)
    return merchant


class CaseDriver:
    """Moves a case through the services as the demo's staff would, one step at a time."""

    def __init__(self, users: dict[str, Any]) -> None:
        self.analyst, self.officer, self.officer2 = (
            users["analyst"],
            users["officer"],
            users["officer2"],
        )

    def submitted(self, merchant: Merchant, kind: str, *, documents: int = 2) -> KycCase:
        case = services.kyc_case_create(merchant=merchant, kind=kind)
        for document_type, name in DOCUMENTS[:documents]:
            services.kyc_document_upload(
                case=case,
                document_type=document_type,
                upload=SimpleUploadedFile(name, TINY_PDF, content_type="application/pdf"),
            )
        case = services.kyc_case_submit(case=case)
        services.kyc_case_screen(case=case)
        return KycCase.objects.get(pk=case.pk)

    def in_review(self, case: KycCase, *, analyst: Any = None) -> KycCase:
        analyst = analyst or self.analyst
        case = services.kyc_case_assign_self(case=case, actor=analyst)
        case = services.kyc_case_start_review(case=case, actor=analyst)
        services.kyc_case_add_note(
            case=case, text="Registry extract matches the declared directors.", actor=analyst
        )
        return case

    def prepared(self, case: KycCase, *, hit_reason: str) -> KycCase:
        """Every document accepted and every screening hit judged a false positive."""
        for document in case.documents.all():
            services.kyc_document_review(
                document=document, review_status="accepted", actor=self.analyst
            )
        for hit in ScreeningResult.objects.filter(case=case):
            services.screening_result_dispose(
                result=hit, disposition="false_positive", reason=hit_reason, actor=self.analyst
            )
        return KycCase.objects.get(pk=case.pk)

    def approved(self, case: KycCase, *, reason: str) -> KycCase:
        case = services.kyc_case_approve(case=case, actor=self.officer, reason=reason)
        if case.status != KycCase.Status.APPROVED:  # four eyes: the second officer decides
            case = services.kyc_case_approve(case=case, actor=self.officer2, reason="Agree")
        return case

    def onboarded(self, merchant: Merchant) -> Merchant:
        case = self.prepared(
            self.in_review(self.submitted(merchant, "kyb")),
            hit_reason="Different entity: registration number and directors differ.",
        )
        self.approved(case, reason="Onboarding checks complete.")
        return Merchant.objects.get(pk=merchant.pk)


# Merchants still onboarding, or gone: no payment history.
ONBOARDING = [
    DemoMerchant("Tulip Digital BV", "Tulip", "NL", "medium"),
    DemoMerchant("Vltava Games s.r.o.", "Vltava", "CZ", "high"),
    DemoMerchant("Global Shadow Trade Ltd", "Shadow Trade", "CY", "high"),
    DemoMerchant("Old Harbour Trading Ltd", "Old Harbour", "GB", "medium", "GBP"),
]


def load_onboarding_cases(users: dict[str, Any], *, now: datetime.datetime) -> None:
    """A case in every state, with the ages that make the queue interesting: one overdue, one
    waiting for a second approval, one with a screening hit to judge."""
    driver = CaseDriver(users)
    officer = users["officer"]
    by_name = {}
    with at(now - datetime.timedelta(days=20)):
        for spec in ONBOARDING:
            by_name[spec.trading_name] = create_merchant(spec, actor=officer)

    with at(now - datetime.timedelta(days=18)):  # rejected: the registry did not match
        old = driver.in_review(driver.submitted(by_name["Old Harbour"], "kyb"))
        services.kyc_case_reject(
            case=old,
            reason_code="ownership_unclear",
            reason_text="Registry extract does not match the declared owners.",
            actor=officer,
        )
    with at(now - datetime.timedelta(days=17)):
        merchant_set_status(
            merchant=by_name["Old Harbour"],
            status=Merchant.Status.CLOSED,
            reason="Onboarding rejected",
            actor=officer,
        )

    with at(now - datetime.timedelta(days=12)):  # overdue: submitted long ago, nobody took it
        driver.submitted(by_name["Tulip"], "kyc")
    with at(now - datetime.timedelta(days=1)):
        services.kyc_case_create(merchant=by_name["Tulip"], kind="kyb")  # a draft

    with at(now - datetime.timedelta(days=6)):  # needs information from the merchant
        vltava_kyc = driver.in_review(driver.submitted(by_name["Vltava"], "kyc"))
        services.kyc_case_request_information(
            case=vltava_kyc,
            message="Please upload a passport for each director.",
            actor=users["analyst"],
        )
    with at(now - datetime.timedelta(days=4)):  # high risk: first approval given, one to go
        vltava_kyb = driver.prepared(
            driver.in_review(driver.submitted(by_name["Vltava"], "kyb", documents=3)),
            hit_reason="Name similarity only: different country and registration number.",
        )
        services.kyc_case_approve(
            case=vltava_kyb, actor=officer, reason="Licence and ownership verified."
        )

    with at(now - datetime.timedelta(days=2)):  # in review, with a sanctions hit to judge
        driver.in_review(driver.submitted(by_name["Shadow Trade"], "kyb", documents=3))


def load_periodic_reviews(users: dict[str, Any], traders: dict[str, Merchant], *, now: Any) -> None:
    """Reviews of merchants that already trade: one escalated (the adverse-media hit on
    Liffey, now suspended) and one just submitted."""
    driver = CaseDriver(users)
    with at(now - datetime.timedelta(days=9)):
        liffey = driver.in_review(driver.submitted(traders["Liffey"], "kyb"))
        services.kyc_case_escalate(
            case=liffey,
            reason="Adverse media: chargeback complaints in the press; needs an officer.",
            actor=users["analyst"],
        )
    with at(now - datetime.timedelta(hours=5)):
        driver.submitted(traders["Costa Azul"], "kyb")
