"""KYC cases over the API: create, upload, submit, read what is missing, resubmit."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from kyc import services as kyc_services
from kyc.models import KycCase, KycDocument
from tests.api.conftest import client_for, issue
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4 certificate of incorporation\n%%EOF\n"


def test_a_merchant_onboards_through_the_api(integration_user, analyst) -> None:
    merchant = MerchantFactory()
    client = client_for(issue(integration_user, ["kyc:read", "kyc:write"], merchant=merchant))
    created = client.post("/api/v1/kyc-cases/", {"kind": "kyb"}, format="json")
    assert created.status_code == 201, created.content
    case_id = created.json()["id"]
    status = client.get(f"/api/v1/kyc-cases/{case_id}/").json()
    assert status["status"] == "draft"
    assert status["missing"] == ["At least one identity or registration document"]

    upload = client.post(
        f"/api/v1/kyc-cases/{case_id}/documents/",
        {
            "document_type": "company_registration",
            "file": SimpleUploadedFile("../../etc/passwd.pdf", PDF),
        },
        format="multipart",
    )
    assert upload.status_code == 201, upload.content
    body = upload.json()
    assert body["content_type"] == "application/pdf" and body["size"] == len(PDF)
    assert "file" not in body and PDF.decode() not in upload.content.decode()
    assert client.get(f"/api/v1/kyc-cases/{case_id}/").json()["missing"] == []

    submitted = client.post(f"/api/v1/kyc-cases/{case_id}/submit/")
    assert submitted.json()["status"] == "submitted"

    case = KycCase.objects.get(pk=case_id)
    kyc_services.kyc_case_assign_self(case=case, actor=analyst)
    kyc_services.kyc_case_start_review(case=case, actor=analyst)
    kyc_services.kyc_case_request_information(case=case, message="Shareholder list", actor=analyst)
    assert "Shareholder list" in client.get(f"/api/v1/kyc-cases/{case_id}/").json()["missing"]
    resubmitted = client.post(f"/api/v1/kyc-cases/{case_id}/resubmit/")
    assert resubmitted.json()["status"] == "submitted"


def test_a_renamed_executable_is_refused_by_content(integration_user) -> None:
    merchant = MerchantFactory()
    case = kyc_services.kyc_case_create(merchant=merchant, kind="kyc")
    client = client_for(issue(integration_user, ["kyc:write"], merchant=merchant))
    response = client.post(
        f"/api/v1/kyc-cases/{case.pk}/documents/",
        {"document_type": "passport", "file": SimpleUploadedFile("id.pdf", b"MZ\x90\x00 exe")},
        format="multipart",
    )
    assert response.status_code == 422 and response.json()["type"] == "upload_rejected"
    assert not KycDocument.objects.exists()


def test_another_merchants_case_does_not_exist_for_this_token(integration_user) -> None:
    theirs = kyc_services.kyc_case_create(merchant=MerchantFactory(), kind="kyc")
    client = client_for(
        issue(integration_user, ["kyc:read", "kyc:write"], merchant=MerchantFactory())
    )
    assert client.get(f"/api/v1/kyc-cases/{theirs.pk}/").status_code == 404
    assert client.post(f"/api/v1/kyc-cases/{theirs.pk}/submit/").status_code == 404
    assert KycCase.objects.get(pk=theirs.pk).status == "draft"
