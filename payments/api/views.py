"""DRF views: validate, call one service or selector, serialize. Domain errors are mapped to
HTTP by payments.api.errors; nothing here catches them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audits.models import PaymentAudit
from config.request_types import AuthenticatedRequest

from .. import services
from ..models import ApprovalRequest, Merchant
from . import selectors
from .errors import field_error
from .filters import ChargebackFilter, PaymentFilter
from .idempotency import HEADER, client_key, idempotent
from .permissions import HasScope, merchant_scope
from .serializers import (
    ApprovalOutputSerializer,
    AuditOutputSerializer,
    AuditQueryInputSerializer,
    ChargebackOutputSerializer,
    ErrorSerializer,
    EvidenceInputSerializer,
    EvidenceOutputSerializer,
    MerchantContactInputSerializer,
    MerchantCreateInputSerializer,
    MerchantOutputSerializer,
    PaymentCreateInputSerializer,
    PaymentOutputSerializer,
    RefundCreateInputSerializer,
    RefundOutputSerializer,
)
from .throttling import IPRateThrottle, TokenRateThrottle

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="a unique value per operation (e.g. a UUID), reused on retries; the first "
    "answer is replayed for 24 hours",
)


class IdCursorPagination(CursorPagination):
    """No COUNT and no OFFSET: a deep page costs what the first does.

    DRF checks a cursor's base64 and offset but not its position, which goes straight into the
    query: a crafted "p=abc" or a position past bigint was a 500. Checked here, it is the
    same 404 "Invalid cursor" as any other bad cursor.
    """

    ordering: str | tuple[str, ...] = "-id"
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"

    def decode_cursor(self, request: Request) -> Any:
        cursor = super().decode_cursor(request)
        position = cursor.position if cursor is not None else None
        # DRF decodes the position from the cursor as text; its stub says int.
        if position is not None and not self.position_is_valid(cast(str, position)):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def position_is_valid(self, position: str) -> bool:
        try:
            return -(2**63) <= int(position) < 2**63
        except ValueError:
            return False


class AuditCursorPagination(IdCursorPagination):
    ordering = ("-created_at", "-id")

    def position_is_valid(self, position: str) -> bool:
        try:
            return parse_datetime(position) is not None
        except ValueError:
            return False


if TYPE_CHECKING:
    _ApiViewBase = APIView  # the mixin is only used on APIViews
else:
    _ApiViewBase = object


class ApiMixin(_ApiViewBase):
    """Scopes per method, throttles per token, and per IP before authentication."""

    permission_classes = [HasScope]
    throttle_classes = [TokenRateThrottle]
    required_scopes: dict[str, str] = {}
    staff_only = False

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        ip_throttle = IPRateThrottle()
        if not ip_throttle.allow_request(request, self):
            # DRF's own check_throttles passes None when no wait is known; the stub says float.
            self.throttled(request, ip_throttle.wait())  # type: ignore[arg-type]
        super().initial(request, *args, **kwargs)


# --- Merchants (staff tokens) ----------------------------------------------------------------


class MerchantListApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"GET": "merchants:read", "POST": "merchants:write"}
    required_permissions = {"POST": "payments.add_merchant"}
    staff_only = True
    pagination_class = IdCursorPagination
    serializer_class = MerchantOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.merchant_list_api()

    @extend_schema(responses=MerchantOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(MerchantOutputSerializer(page, many=True).data)

    @extend_schema(request=MerchantCreateInputSerializer, responses={201: MerchantOutputSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = MerchantCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        merchant = services.merchant_create(**data.validated_data, actor=request.user)
        return Response(MerchantOutputSerializer(merchant).data, status=status.HTTP_201_CREATED)


class MerchantDetailApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"GET": "merchants:read", "PATCH": "merchants:write"}
    staff_only = True
    serializer_class = MerchantOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.merchant_list_api()

    def get(self, request: Request, pk: int) -> Response:
        merchant = get_object_or_404(self.get_queryset(), pk=pk)
        return Response(MerchantOutputSerializer(merchant).data)

    @extend_schema(request=MerchantContactInputSerializer, responses=MerchantOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        """Update a merchant's contact details."""
        merchant = get_object_or_404(self.get_queryset(), pk=pk)
        data = MerchantContactInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # No explicit actor: the audit context reads the user DRF authenticated in this view.
        merchant = services.merchant_update_contact(merchant=merchant, **data.validated_data)
        return Response(MerchantOutputSerializer(merchant).data)


# --- Payments ----------------------------------------------------------------------------------


class PaymentListApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"GET": "payments:read", "POST": "payments:write"}
    required_permissions = {"POST": "payments.add_payment"}
    pagination_class = IdCursorPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = PaymentFilter
    serializer_class = PaymentOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.payment_list_api(merchant_id=merchant_scope(self.request))

    @extend_schema(responses=PaymentOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        payments = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(payments)
        return self.get_paginated_response(PaymentOutputSerializer(page, many=True).data)

    @extend_schema(
        request=PaymentCreateInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: PaymentOutputSerializer,
            402: OpenApiResponse(ErrorSerializer, description="declined by the gateway"),
            409: OpenApiResponse(
                ErrorSerializer, description="a request with this key is still in flight"
            ),
            422: OpenApiResponse(
                ErrorSerializer, description="key reused with another body, or refused"
            ),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        """Create a payment through its gateway (authorize, and capture unless told not to)."""
        data = PaymentCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        bound, asked = merchant_scope(request), values.pop("merchant", None)
        if bound is not None and asked not in (None, bound):
            # Another merchant's id: as if it did not exist.
            return field_error("merchant", "Unknown merchant.")
        merchant_id = bound if bound is not None else asked
        if merchant_id is None:
            return field_error("merchant", "This field is required with a staff token.")
        merchant = Merchant.objects.filter(pk=merchant_id).first()
        if merchant is None:
            return field_error("merchant", "Unknown merchant.")

        def run() -> Response:
            # A retry after a lost gateway answer finds the first attempt's row by this key.
            payment = services.payment_authorize(
                merchant=merchant, **values, client_key=client_key(request), actor=request.user
            )
            return Response(PaymentOutputSerializer(payment).data, status=status.HTTP_201_CREATED)

        return idempotent(request, self, run)


class PaymentDetailApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"GET": "payments:read"}
    serializer_class = PaymentOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.payment_list_api(merchant_id=merchant_scope(self.request))

    def get(self, request: Request, pk: int) -> Response:
        payment = get_object_or_404(self.get_queryset(), pk=pk)
        return Response(PaymentOutputSerializer(payment).data)


class PaymentCancelApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"POST": "payments:write"}
    serializer_class = PaymentOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.payment_list_api(merchant_id=merchant_scope(self.request))

    @extend_schema(
        request=None,
        responses={
            200: PaymentOutputSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="the payment can no longer be canceled"
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        """Cancel an authorized (not yet captured) payment at its gateway."""
        payment = get_object_or_404(self.get_queryset(), pk=pk)
        payment = services.payment_cancel(payment=payment, actor=request.user)
        return Response(PaymentOutputSerializer(payment).data)


class PaymentRefundApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"POST": "payments:write"}
    required_permissions = {"POST": "payments.add_refund"}
    serializer_class = RefundOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.payment_list_api(merchant_id=merchant_scope(self.request))

    @extend_schema(
        request=RefundCreateInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: RefundOutputSerializer,
            202: ApprovalOutputSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="in flight, or the payment is not refundable"
            ),
            422: OpenApiResponse(
                ErrorSerializer, description="key reused with another body, or too much"
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        """Refund part or all of a captured payment. Above the approval threshold the refund
        waits for a second person: 202 with the approval request."""
        payment = get_object_or_404(self.get_queryset(), pk=pk)
        data = RefundCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            result = services.refund_request(
                payment=payment, **data.validated_data, actor=request.user
            )
            if isinstance(result, ApprovalRequest):
                return Response(
                    ApprovalOutputSerializer(result).data, status=status.HTTP_202_ACCEPTED
                )
            return Response(RefundOutputSerializer(result).data, status=status.HTTP_201_CREATED)

        return idempotent(request, self, run)


# --- Chargebacks -------------------------------------------------------------------------------


class ChargebackListApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"GET": "payments:read"}
    pagination_class = IdCursorPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = ChargebackFilter
    serializer_class = ChargebackOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.chargeback_list_api(merchant_id=merchant_scope(self.request))

    @extend_schema(responses=ChargebackOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ChargebackOutputSerializer(page, many=True).data)


class ChargebackDetailApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"GET": "payments:read"}
    serializer_class = ChargebackOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.chargeback_list_api(merchant_id=merchant_scope(self.request))

    def get(self, request: Request, pk: int) -> Response:
        chargeback = get_object_or_404(self.get_queryset(), pk=pk)
        return Response(ChargebackOutputSerializer(chargeback).data)


class ChargebackEvidenceApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"POST": "payments:write"}
    serializer_class = EvidenceOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.chargeback_list_api(merchant_id=merchant_scope(self.request))

    @extend_schema(
        request=EvidenceInputSerializer,
        responses={
            200: EvidenceOutputSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="already submitted, or the dispute is closed"
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        """Save the evidence text and, unless `submit` is false, send it to the gateway once."""
        chargeback = get_object_or_404(self.get_queryset(), pk=pk)
        data = EvidenceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        evidence = services.evidence_save_draft(
            chargeback=chargeback, text=data.validated_data["text"], actor=request.user
        )
        if data.validated_data["submit"]:
            evidence = services.evidence_submit(chargeback=chargeback, actor=request.user)
        return Response(EvidenceOutputSerializer(evidence).data)


# --- Audit trail (auditors) ----------------------------------------------------------------------


class AuditTrailApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"GET": "audit:read"}
    staff_only = True
    pagination_class = AuditCursorPagination
    serializer_class = AuditOutputSerializer
    queryset = PaymentAudit.objects.none()  # for the schema; rows come from the selector

    @extend_schema(
        parameters=[AuditQueryInputSerializer], responses=AuditOutputSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        """The payment audit trail of one object, newest first."""
        query = AuditQueryInputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = selectors.audit_rows_for(**query.validated_data)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(AuditOutputSerializer(page, many=True).data)


class NotFoundApi(APIView):
    """Every other path under /api/: the JSON 404."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from rest_framework.exceptions import NotFound

        raise NotFound

    post = put = patch = delete = get
