"""KYC cases over the API: create, submit, upload a document, read status and what is
missing, resubmit. Thin over kyc.services and kyc.selectors; a merchant token sees only its
merchant's cases. Document contents never leave through the API: only their metadata."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from config.request_types import AuthenticatedRequest
from kyc import owners as kyc_owners
from kyc import selectors as kyc_selectors
from kyc import services as kyc_services
from kyc.models import BeneficialOwner, KycCase, KycDocument, OwnershipHeld
from payments.integration.permissions import merchant_for_request, merchant_scope
from payments.integration.serializers import (
    ClosedInputSerializer,
    PersonalFieldsSerializer,
    RowOutputSerializer,
)
from payments.integration.views import ApiMixin, RowActionApi, validated
from payments.models import Merchant


class KycCaseCreateInputSerializer(serializers.Serializer):
    merchant = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="required with a staff token"
    )
    kind = serializers.ChoiceField(choices=KycCase.Kind.choices)


class KycCaseOutputSerializer(RowOutputSerializer):
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


class KycDocumentOutputSerializer(RowOutputSerializer):
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
    serializer_class: type[serializers.BaseSerializer[Any]] | None = KycCaseOutputSerializer

    def get_queryset(self) -> Any:
        cases = KycCase.objects.all()
        bound = merchant_scope(self.request)
        return cases if bound is None else cases.filter(merchant_id=bound)


class KycCaseListApi(_KycCaseMixin, generics.ListAPIView):
    required_scopes = {"GET": "kyc:read", "POST": "kyc:write"}
    required_permissions = {"POST": "kyc.add_kyccase"}

    @extend_schema(request=KycCaseCreateInputSerializer, responses={201: KycCaseOutputSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        values = validated(KycCaseCreateInputSerializer, request.data)
        merchant = merchant_for_request(request, values.get("merchant"))
        case = kyc_services.kyc_case_create(
            merchant=merchant, kind=values["kind"], actor=request.user
        )
        return Response(KycCaseOutputSerializer(case).data, status=status.HTTP_201_CREATED)


class KycCaseDetailApi(_KycCaseMixin, generics.GenericAPIView):
    required_scopes = {"GET": "kyc:read"}
    serializer_class = KycCaseStatusOutputSerializer

    def get(self, request: Request, pk: int) -> Response:
        """The case's status and what is still missing."""
        case = self.get_object()
        # The status serializer reads it as a field.
        case.missing = kyc_selectors.kyc_case_missing(case)
        return Response(KycCaseStatusOutputSerializer(case).data)


class _KycCaseStepApi(_KycCaseMixin, RowActionApi):
    """One step of the merchant's side of the workflow: `step`, the service that takes it."""

    required_scopes = {"POST": "kyc:write"}
    step: Callable[..., KycCase]
    refusals = {409: "not allowed from the case's status"}

    def act(self, case: Any, values: dict[str, Any], actor: Any) -> Any:
        return type(self).step(case=case, actor=actor)


class KycCaseSubmitApi(_KycCaseStepApi):
    """Send a draft case for review."""

    step = staticmethod(kyc_services.kyc_case_submit)


class KycCaseResubmitApi(_KycCaseStepApi):
    """Answer an information request: the case goes back to the queue."""

    step = staticmethod(kyc_services.kyc_case_resubmit)


# A file comes only as multipart: of the two parsers, the schema names that one.
@extend_schema(request={"multipart/form-data": KycDocumentInputSerializer})
class KycDocumentUploadApi(_KycCaseMixin, RowActionApi):
    """Upload a document (type checked from its content); only its metadata comes back."""

    required_scopes = {"POST": "kyc:write"}
    parser_classes = [MultiPartParser, FormParser]
    input_serializer_class = KycDocumentInputSerializer
    serializer_class = KycDocumentOutputSerializer
    success_status = status.HTTP_201_CREATED
    refusals = {422: "wrong type, empty or too large"}

    def act(self, case: Any, values: dict[str, Any], actor: Any) -> Any:
        return kyc_services.kyc_document_upload(
            case=case, document_type=values["document_type"], upload=values["file"], actor=actor
        )


# --- Beneficial owners (KYB) ----------------------------------------------------------------

OWNER_PERSONAL_FIELDS = ("full_name", "date_of_birth", "nationality", "residential_address")


class BeneficialOwnerOutputSerializer(PersonalFieldsSerializer):
    """The personal fields only for a caller that may see them (scope merchants:contact, as
    for the contact person); left out otherwise."""

    personal_fields = OWNER_PERSONAL_FIELDS

    class Meta:
        model = BeneficialOwner
        fields = [
            "id",
            "merchant",
            *OWNER_PERSONAL_FIELDS,
            "ownership_bp",
            "held",
            "created_at",
            "updated_at",
        ]


class BeneficialOwnerInputSerializer(ClosedInputSerializer):
    unknown_field = "Not a field of a beneficial owner."

    full_name = serializers.CharField(max_length=200)
    date_of_birth = serializers.DateField(help_text="YYYY-MM-DD")
    nationality = serializers.RegexField(r"^[A-Za-z]{2}$", help_text="ISO 3166-1 alpha-2")
    residential_address = serializers.CharField(max_length=300)
    ownership_bp = serializers.IntegerField(
        min_value=2_500, max_value=10_000, help_text="basis points: 2500 = 25 %"
    )
    held = serializers.ChoiceField(choices=OwnershipHeld.choices, default=OwnershipHeld.DIRECTLY)


def _owners_of(request: Request) -> Any:
    owners = BeneficialOwner.objects.all()
    bound = merchant_scope(request)
    return owners if bound is None else owners.filter(merchant_id=bound)


class BeneficialOwnerListApi(ApiMixin, generics.GenericAPIView):
    """A merchant's beneficial owners; a merchant token sees and adds only its own."""

    required_scopes = {"GET": "kyc:read", "POST": "kyc:write"}
    required_permissions = {"POST": "kyc.add_beneficialowner"}
    serializer_class = BeneficialOwnerOutputSerializer
    queryset = BeneficialOwner.objects.none()  # for the schema; rows come from _owners_of
    pagination_class = None  # a merchant's few owners, in one answer

    def _merchant(self, request: Request, pk: int) -> Merchant:
        bound = merchant_scope(request)
        if bound is not None and bound != pk:
            raise Http404  # another merchant's owners read as unknown
        return get_object_or_404(Merchant, pk=pk)

    @extend_schema(responses=BeneficialOwnerOutputSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        merchant = self._merchant(request, pk)
        rows = _owners_of(request).filter(merchant=merchant).order_by("pk")
        return Response(
            BeneficialOwnerOutputSerializer(rows, many=True, context={"request": request}).data
        )

    @extend_schema(
        request=BeneficialOwnerInputSerializer, responses={201: BeneficialOwnerOutputSerializer}
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        merchant = self._merchant(request, pk)
        values = validated(BeneficialOwnerInputSerializer, request.data)
        owner = kyc_owners.beneficial_owner_add(merchant=merchant, **values, actor=request.user)
        return Response(
            BeneficialOwnerOutputSerializer(owner, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class BeneficialOwnerDetailApi(ApiMixin, generics.RetrieveAPIView):
    required_scopes = {"GET": "kyc:read", "PATCH": "kyc:write"}
    required_permissions = {"PATCH": "kyc.change_beneficialowner"}
    serializer_class = BeneficialOwnerOutputSerializer

    def get_queryset(self) -> Any:
        return _owners_of(self.request)

    @extend_schema(
        request=BeneficialOwnerInputSerializer, responses=BeneficialOwnerOutputSerializer
    )
    def patch(self, request: AuthenticatedRequest, pk: int) -> Response:
        owner = self.get_object()
        values = validated(BeneficialOwnerInputSerializer, request.data, partial=True)
        owner = kyc_owners.beneficial_owner_update(owner=owner, **values, actor=request.user)
        return Response(BeneficialOwnerOutputSerializer(owner, context={"request": request}).data)
