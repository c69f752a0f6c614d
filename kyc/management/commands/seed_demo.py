"""Demo data for trying the back-office: merchants, KYC cases in every state, payments,
refunds, disputes and one staff user per role. Safe to run again: it adds nothing twice.

It lives in kyc, the one app that may see both (kyc uses payments, never the reverse)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from audits import roles
from audits.commands import AuditedCommand
from kyc.models import CaseNote, KycCase, KycDocument
from kyc.services import kyc_case_screen
from payments.models import Chargeback, Merchant, Payment, Refund, WebhookEvent
from payments.services.disputes import chargeback_record, chargeback_set_status
from payments.services.merchants import (
    merchant_activate_after_kyc,
    merchant_create,
    merchant_set_status,
)
from payments.services.payments import payment_record, payment_set_status
from payments.services.refunds import refund_create, refund_set_status

CREDENTIALS_FILE = settings.VAR_DIR / "demo_credentials.json"

STAFF = [
    ("analyst", "Alex", "Analyst", roles.KYC_ANALYST),
    ("analyst2", "Sam", "Second-Analyst", roles.KYC_ANALYST),
    ("officer", "Olivia", "Officer", roles.COMPLIANCE_OFFICER),
    ("officer2", "Omar", "Second-Officer", roles.COMPLIANCE_OFFICER),
    ("ops", "Priya", "Operations", roles.PAYMENTS_OPERATIONS),
    ("auditor", "Aude", "Auditor", roles.AUDITOR),
    ("admin", "Ada", "Administrator", roles.ADMINISTRATOR),
]

MERCHANTS = [
    # legal name, trading name, country, status, risk
    ("Acme Widgets Ltd", "Acme", "GB", "active", "low"),
    ("Boulangerie Dupont SARL", "Dupont", "FR", "active", "low"),
    ("Nordlicht Reisen GmbH", "Nordlicht", "DE", "active", "medium"),
    ("Costa Azul Imports SL", "Costa Azul", "ES", "active", "high"),
    ("Tulip Digital BV", "Tulip", "NL", "pending", "medium"),
    ("Vltava Games s.r.o.", "Vltava", "CZ", "pending", "high"),
    ("Liffey Ticketing Ltd", "Liffey", "IE", "suspended", "high"),
    ("Old Harbour Trading Ltd", "Old Harbour", "GB", "closed", "medium"),
]

# One case per state, across the merchants above.
CASES = [
    ("Tulip Digital BV", "kyb", "draft"),
    ("Tulip Digital BV", "kyc", "submitted"),
    ("Vltava Games s.r.o.", "kyb", "in_review"),
    ("Vltava Games s.r.o.", "kyc", "needs_information"),
    ("Liffey Ticketing Ltd", "kyb", "escalated"),
    ("Acme Widgets Ltd", "kyb", "approved"),
    ("Old Harbour Trading Ltd", "kyb", "rejected"),
    ("Costa Azul Imports SL", "kyb", "submitted"),
]

TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


class Command(AuditedCommand):
    help = "Load demo data (idempotent) and print the demo staff users and their passwords."

    def handle(self, *args: Any, **options: Any) -> None:
        users = self._staff_users()
        if Merchant.objects.filter(legal_name=MERCHANTS[0][0]).exists():
            self.stdout.write("Demo data already loaded; nothing added.")
        else:
            self._load(users)
        self._print_credentials()

    def _staff_users(self) -> dict[str, Any]:
        user_model = get_user_model()
        stored = self._read_credentials()
        users = {}
        self.stdout.write(f"Staff users ({len(STAFF)})...")
        for username, first, last, role in STAFF:
            user, created = user_model.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "is_staff": True,
                    "email": f"{username}@backoffice.example",
                },
            )
            if created or username not in stored:
                stored[username] = secrets.token_urlsafe(12)
                user.set_password(stored[username])
                user.save()
            user.groups.add(Group.objects.get(name=role))
            users[username] = user
        self._write_credentials(stored)
        return users

    @transaction.atomic
    def _load(self, users: dict[str, Any]) -> None:
        officer, analyst = users["officer"], users["analyst"]
        merchants = {}
        self.stdout.write(f"Merchants ({len(MERCHANTS)})...")
        for legal, trading, country, status, risk in MERCHANTS:
            merchant = merchant_create(
                legal_name=legal,
                trading_name=trading,
                country=country,
                risk_level=risk,
                contact_name=f"{trading} Finance",
                contact_email=f"finance@{trading.lower().replace(' ', '')}.example",
                contact_phone="+44 20 7946 0000",
                actor=officer,
            )
            path = {
                "active": ["active"],
                "suspended": ["active", "suspended"],
                "closed": ["closed"],
                "pending": [],
            }[status]
            for step in path:
                if step == "active":
                    # Like any merchant, a demo merchant is activated by an approved KYC case.
                    onboarding = KycCase.objects.create(
                        merchant=merchant,
                        kind="kyb",
                        status=KycCase.Status.APPROVED,
                        risk_level=risk,
                        decision=KycCase.Decision.APPROVE,
                        decided_by=officer,
                        decided_at=timezone.now(),
                        decision_reason="Onboarded before the demo.",
                    )
                    merchant = merchant_activate_after_kyc(
                        merchant=merchant, approved_case=onboarding, actor=officer
                    )
                else:
                    merchant = merchant_set_status(
                        merchant=merchant,
                        status=step,
                        reason="demo: chargebacks under investigation",
                        actor=officer,
                    )
            merchants[legal] = merchant

        self.stdout.write(f"KYC cases ({len(CASES)}, one in every state)...")
        now = timezone.now()
        for index, (legal, kind, status) in enumerate(CASES):
            decided = status in KycCase.DECIDED
            case = KycCase.objects.create(
                merchant=merchants[legal],
                kind=kind,
                status=status,
                risk_level=merchants[legal].risk_level,
                risk_score=20 + 10 * index,
                assignee=analyst
                if status in {"in_review", "needs_information"}
                else (officer if status == "escalated" else None),
                submitted_at=None if status == "draft" else now - timedelta(days=index + 1),
                due_at=None if status == "draft" else now + timedelta(days=5 - index),
                decision={"approved": "approve", "rejected": "reject"}.get(status, ""),
                decided_by=officer if decided else None,
                decided_at=now if decided else None,
                decision_reason="Registry extract does not match the declared owners."
                if status == "rejected"
                else "",
            )
            if status != "draft":
                document = KycDocument(
                    case=case,
                    document_type="company_registration",
                    original_name="registry-extract.pdf",
                    sha256=hashlib.sha256(TINY_PDF).hexdigest(),
                    size=len(TINY_PDF),
                    content_type="application/pdf",
                    uploaded_by=analyst,
                )
                document.file.save("upload", ContentFile(TINY_PDF), save=False)
                document.save()
            CaseNote.objects.create(case=case, author=analyst, text=f"Demo case in state {status}.")
            if status != "draft":
                kyc_case_screen(case=case)

        active = [m for m in merchants.values() if m.status == Merchant.Status.ACTIVE]
        plan = [
            ("captured", 24),
            ("authorized", 4),
            ("pending", 4),
            ("failed", 4),
            ("canceled", 2),
            ("refunded", 3),
            ("partially_refunded", 3),
        ]
        total = sum(count for _, count in plan)
        self.stdout.write(f"Payments ({total})...")
        created = 0
        for status, count in plan:
            for _ in range(count):
                merchant = active[created % len(active)]
                created += 1
                self._payment(merchant, status, created, ops=users["ops"])
        self.stdout.write("Disputes...")
        captured = list(Payment.objects.filter(status="captured").order_by("pk")[:5])
        for n, (payment, status) in enumerate(
            zip(
                captured,
                ["needs_response", "needs_response", "under_review", "won", "lost"],
                strict=False,
            )
        ):
            chargeback = chargeback_record(
                payment=payment,
                gateway_reference=f"dp_demo_{n:04d}",
                reason="fraudulent",
                amount=payment.amount,
                evidence_due_by=now + timedelta(days=2 + 3 * n),
            )
            if status in {"under_review", "won", "lost"}:
                chargeback = chargeback_set_status(chargeback=chargeback, status="under_review")
            if status in {"won", "lost"}:
                chargeback_set_status(chargeback=chargeback, status=status)
        self.stdout.write("Webhook events...")
        for n, (event_type, status) in enumerate(
            [
                ("payment_intent.succeeded", "processed"),
                ("charge.dispute.created", "processed"),
                ("customer.created", "ignored"),
                ("charge.refunded", "failed"),
            ]
        ):
            WebhookEvent.objects.create(
                provider="stripe",
                event_id=f"evt_demo_{n:04d}",
                event_type=event_type,
                payload={"id": f"evt_demo_{n:04d}", "type": event_type},
                status=status,
                attempts=1 if status != "failed" else 3,
                processed_at=now,
                last_error="payment not found" if status == "failed" else "",
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {Merchant.objects.count()} merchants, "
                f"{KycCase.objects.count()} KYC cases, "
                f"{Payment.objects.count()} payments, {Refund.objects.count()} refunds, "
                f"{Chargeback.objects.count()} chargebacks."
            )
        )

    def _payment(self, merchant: Merchant, status: str, n: int, *, ops: Any) -> Payment:
        gateway = "stripe" if n % 3 else "braintree"
        reference = f"pi_demo_{n:05d}" if gateway == "stripe" else f"bt_demo_{n:05d}"
        payment = payment_record(
            merchant=merchant,
            gateway=gateway,
            amount=500 + 137 * n,
            currency="EUR" if n % 2 else "GBP",
            gateway_reference=reference,
            card_brand="visa" if n % 2 else "mastercard",
            card_last4=f"{4242 + n:04d}"[-4:],
            customer_email=f"customer{n}@example.com",
        )
        if status in {"pending"}:
            return payment
        if status in {"failed", "canceled", "authorized"}:
            return payment_set_status(payment=payment, status=status)
        payment = payment_set_status(payment=payment, status="captured")
        if status in {"refunded", "partially_refunded"}:
            amount = payment.amount if status == "refunded" else payment.amount // 3
            refund = refund_create(
                payment=payment, amount=amount, reason="requested_by_customer", actor=ops
            )
            refund_set_status(
                refund=refund, status="succeeded", gateway_reference=f"re_demo_{n:05d}"
            )
        return payment

    def _read_credentials(self) -> dict[str, str]:
        try:
            return json.loads(CREDENTIALS_FILE.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _write_credentials(self, stored: dict[str, str]) -> None:
        CREDENTIALS_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(CREDENTIALS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(stored, handle, indent=2)

    def _print_credentials(self) -> None:
        stored = self._read_credentials()
        self.stdout.write("")
        # make run passes the address it serves on (HOST, PORT); 127.0.0.1:8000 is runserver's.
        host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
        self.stdout.write(f"Sign in at http://{host}:{port}/admin/ with one of these demo users")
        self.stdout.write(f"(passwords kept in {CREDENTIALS_FILE}, demo only):")
        for username, _, _, role in STAFF:
            self.stdout.write(f"  {username:<10} {stored.get(username, '?'):<20} {role}")
