"""KYC cases over the API: create, submit, upload a document, read status and what is
missing, resubmit. Thin over kyc.services and kyc.selectors; a merchant token sees only its
merchant's cases. Document contents never leave through the API: only their metadata."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from config.request_types import AuthenticatedRequest
from kyc import selectors as kyc_selectors
from kyc import services as kyc_services
from kyc.models import KycCase, KycDocument
from payments.integration.errors import ErrorSerializer
from payments.integration.permissions import merchant_for_request, merchant_scope
from payments.integration.views import ApiMixin, IdCursorPagination


class KycCaseCreateInputSerializer(serializers.Serializer):
    merchant = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="required with a staff token"
    )
    kind = serializers.ChoiceField(choices=KycCase.Kind.choices)


class KycCaseOutputSerializer(serializers.ModelSerializer):
    merchant = serializers.IntegerField(source="merchant_id", read_only=True)

    class Meta:
        model = KycCase
        fields = [
            "id",
            "reference",
            "merchant",
            "kind",
            "status",
            "decision",
            "submitted_at",
            "due_at",
            "decided_at",
            "created_at",
        ]


class KycCaseStatusOutputSerializer(KycCaseOutputSerializer):
    missing = serializers.ListField(
        child=serializers.CharField(), help_text="what the merchant still has to send"
    )

    class Meta(KycCaseOutputSerializer.Meta):
        fields = [*KycCaseOutputSerializer.Meta.fields, "missing"]


class KycDocumentInputSerializer(serializers.Serializer):
    document_type = serializers.ChoiceField(choices=KycDocument.DocumentType.choices)
    file = serializers.FileField(help_text="PDF, PNG or JPEG")


class KycDocumentOutputSerializer(serializers.ModelSerializer):
    case = serializers.IntegerField(source="case_id", read_only=True)

    class Meta:
        model = KycDocument
        fields = [
            "id",
            "case",
            "document_type",
            "original_name",
            "size",
            "content_type",
            "sha256",
            "review_status",
            "uploaded_at",
        ]


class _KycCaseMixin(ApiMixin):
    def get_queryset(self) -> Any:
        cases = KycCase.objects.all()
        bound = merchant_scope(self.request)
        return cases if bound is None else cases.filter(merchant_id=bound)

    def get_case(self, pk: int) -> KycCase:
        return get_object_or_404(self.get_queryset(), pk=pk)


class KycCaseListApi(_KycCaseMixin, generics.GenericAPIView):
    required_scopes = {"GET": "kyc:read", "POST": "kyc:write"}
    required_permissions = {"POST": "kyc.add_kyccase"}
    pagination_class = IdCursorPagination
    serializer_class = KycCaseOutputSerializer

    @extend_schema(responses=KycCaseOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(KycCaseOutputSerializer(page, many=True).data)

    @extend_schema(request=KycCaseCreateInputSerializer, responses={201: KycCaseOutputSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = KycCaseCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        merchant = merchant_for_request(request, data.validated_data.get("merchant"))
        case = kyc_services.kyc_case_create(
            merchant=merchant, kind=data.validated_data["kind"], actor=request.user
        )
        return Response(KycCaseOutputSerializer(case).data, status=status.HTTP_201_CREATED)


class KycCaseDetailApi(_KycCaseMixin, generics.GenericAPIView):
    required_scopes = {"GET": "kyc:read"}
    serializer_class = KycCaseStatusOutputSerializer

    def get(self, request: Request, pk: int) -> Response:
        """The case's status and what is still missing."""
        case = self.get_case(pk)
        # The status serializer reads it as a field.
        case.missing = kyc_selectors.kyc_case_missing(case)  # type: ignore[attr-defined]
        return Response(KycCaseStatusOutputSerializer(case).data)


_STEP_RESPONSES = {
    200: KycCaseOutputSerializer,
    409: OpenApiResponse(ErrorSerializer, description="not allowed from the case's status"),
}


class KycCaseSubmitApi(_KycCaseMixin, generics.GenericAPIView):
    required_scopes = {"POST": "kyc:write"}
    serializer_class = KycCaseOutputSerializer

    @extend_schema(request=None, responses=_STEP_RESPONSES)
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        """Send a draft case for review."""
        case = kyc_services.kyc_case_submit(case=self.get_case(pk), actor=request.user)
        return Response(KycCaseOutputSerializer(case).data)


class KycCaseResubmitApi(_KycCaseMixin, generics.GenericAPIView):
    required_scopes = {"POST": "kyc:write"}
    serializer_class = KycCaseOutputSerializer

    @extend_schema(request=None, responses=_STEP_RESPONSES)
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        """Answer an information request: the case goes back to the queue."""
        case = kyc_services.kyc_case_resubmit(case=self.get_case(pk), actor=request.user)
        return Response(KycCaseOutputSerializer(case).data)


class KycDocumentUploadApi(_KycCaseMixin, generics.GenericAPIView):
    required_scopes = {"POST": "kyc:write"}
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = KycDocumentOutputSerializer

    @extend_schema(
        request={"multipart/form-data": KycDocumentInputSerializer},
        responses={
            201: KycDocumentOutputSerializer,
            422: OpenApiResponse(ErrorSerializer, description="wrong type, empty or too large"),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        """Upload a document (type checked from its content); only its metadata comes back."""
        case = self.get_case(pk)
        data = KycDocumentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        document = kyc_services.kyc_document_upload(
            case=case,
            document_type=data.validated_data["document_type"],
            upload=data.validated_data["file"],
            actor=request.user,
        )
        return Response(KycDocumentOutputSerializer(document).data, status=status.HTTP_201_CREATED)
