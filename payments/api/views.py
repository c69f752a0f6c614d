"""DRF views: validate, call one service or selector, serialize. Domain errors are mapped to
HTTP by payments.integration.errors; nothing here catches them."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from audits.models import PaymentAudit
from config.request_types import AuthenticatedRequest

from ..integration.errors import ErrorSerializer
from ..integration.idempotency import HEADER, client_key, idempotent
from ..integration.permissions import merchant_for_request, merchant_scope
from ..integration.views import ApiMixin, IdCursorPagination
from ..services.disputes import evidence_save_draft, evidence_submit
from ..services.merchants import merchant_create, merchant_update_contact
from ..services.payments import payment_authorize, payment_cancel
from ..services.payout_accounts import (
    merchant_payouts_set,
    payout_account_add,
    payout_account_confirm,
)
from ..services.refunds import refund_request
from . import selectors
from .filters import ChargebackFilter, PaymentFilter
from .serializers import (
    ApprovalOutputSerializer,
    AuditOutputSerializer,
    AuditQueryInputSerializer,
    ChargebackOutputSerializer,
    EvidenceInputSerializer,
    EvidenceOutputSerializer,
    MerchantContactInputSerializer,
    MerchantCreateInputSerializer,
    MerchantOutputSerializer,
    MerchantPayoutsInputSerializer,
    MerchantPayoutsOutputSerializer,
    MerchantQueryInputSerializer,
    PaymentCreateInputSerializer,
    PaymentOutputSerializer,
    PayoutAccountConfirmInputSerializer,
    PayoutAccountCreateInputSerializer,
    PayoutAccountOutputSerializer,
    RefundCreateInputSerializer,
    RefundOutputSerializer,
)

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="a unique value per operation (e.g. a UUID), reused on retries; the first "
    "answer is replayed for 24 hours",
)


class AuditCursorPagination(IdCursorPagination):
    ordering = ("-created_at", "-id")

    def position_is_valid(self, position: str) -> bool:
        try:
            return parse_datetime(position) is not None
        except ValueError:
            return False


# Each view below reads its rows through one of these: the merchants (staff tokens only), or the
# payments and chargebacks of the token's own merchant (all of them for a staff token).


class _MerchantsApi(ApiMixin, generics.GenericAPIView):
    def get_queryset(self) -> Any:
        return selectors.merchant_list_api()


class _PaymentsApi(ApiMixin, generics.GenericAPIView):
    def get_queryset(self) -> Any:
        return selectors.payment_list_api(merchant_id=merchant_scope(self.request))


class _ChargebacksApi(ApiMixin, generics.GenericAPIView):
    def get_queryset(self) -> Any:
        return selectors.chargeback_list_api(merchant_id=merchant_scope(self.request))


# --- Merchants (staff tokens) ----------------------------------------------------------------


class MerchantListApi(_MerchantsApi):
    required_scopes = {"GET": "merchants:read", "POST": "merchants:write"}
    required_permissions = {"POST": "payments.add_merchant"}
    staff_only = True
    pagination_class = IdCursorPagination
    serializer_class = MerchantOutputSerializer

    @extend_schema(responses=MerchantOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            MerchantOutputSerializer(page, many=True, context={"request": request}).data
        )

    @extend_schema(request=MerchantCreateInputSerializer, responses={201: MerchantOutputSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = MerchantCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        merchant = merchant_create(**data.validated_data, actor=request.user)
        return Response(
            MerchantOutputSerializer(merchant, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class MerchantDetailApi(_MerchantsApi):
    required_scopes = {"GET": "merchants:read", "PATCH": "merchants:write"}
    staff_only = True
    serializer_class = MerchantOutputSerializer

    def get(self, request: Request, pk: int) -> Response:
        merchant = get_object_or_404(self.get_queryset(), pk=pk)
        return Response(MerchantOutputSerializer(merchant, context={"request": request}).data)

    @extend_schema(request=MerchantContactInputSerializer, responses=MerchantOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        """Update a merchant's contact details."""
        merchant = get_object_or_404(self.get_queryset(), pk=pk)
        data = MerchantContactInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # No explicit actor: the audit context reads the user DRF authenticated in this view.
        merchant = merchant_update_contact(merchant=merchant, **data.validated_data)
        return Response(MerchantOutputSerializer(merchant, context={"request": request}).data)


# --- Payments ----------------------------------------------------------------------------------


class PaymentListApi(_PaymentsApi):
    required_scopes = {"GET": "payments:read", "POST": "payments:write"}
    required_permissions = {"POST": "payments.add_payment"}
    pagination_class = IdCursorPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = PaymentFilter
    serializer_class = PaymentOutputSerializer

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
        merchant = merchant_for_request(request, values.pop("merchant", None))

        def run() -> Response:
            # A retry after a lost gateway answer finds the first attempt's row by this key.
            payment = payment_authorize(
                merchant=merchant, **values, client_key=client_key(request), actor=request.user
            )
            return Response(PaymentOutputSerializer(payment).data, status=status.HTTP_201_CREATED)

        return idempotent(request, self, run)


class PaymentDetailApi(_PaymentsApi):
    required_scopes = {"GET": "payments:read"}
    serializer_class = PaymentOutputSerializer

    def get(self, request: Request, pk: int) -> Response:
        payment = get_object_or_404(self.get_queryset(), pk=pk)
        return Response(PaymentOutputSerializer(payment).data)


class PaymentCancelApi(_PaymentsApi):
    required_scopes = {"POST": "payments:write"}
    serializer_class = PaymentOutputSerializer

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
        payment = payment_cancel(payment=payment, actor=request.user)
        return Response(PaymentOutputSerializer(payment).data)


class PaymentRefundApi(_PaymentsApi):
    required_scopes = {"POST": "payments:write"}
    required_permissions = {"POST": "payments.add_refund"}
    serializer_class = RefundOutputSerializer

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
            result = refund_request(payment=payment, **data.validated_data, actor=request.user)
            if result.approval is not None:
                return Response(
                    ApprovalOutputSerializer(result.approval).data,
                    status=status.HTTP_202_ACCEPTED,
                )
            return Response(
                RefundOutputSerializer(result.refund).data, status=status.HTTP_201_CREATED
            )

        return idempotent(request, self, run)


# --- Chargebacks -------------------------------------------------------------------------------


class ChargebackListApi(_ChargebacksApi):
    required_scopes = {"GET": "payments:read"}
    pagination_class = IdCursorPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = ChargebackFilter
    serializer_class = ChargebackOutputSerializer

    @extend_schema(responses=ChargebackOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ChargebackOutputSerializer(page, many=True).data)


class ChargebackDetailApi(_ChargebacksApi):
    required_scopes = {"GET": "payments:read"}
    serializer_class = ChargebackOutputSerializer

    def get(self, request: Request, pk: int) -> Response:
        chargeback = get_object_or_404(self.get_queryset(), pk=pk)
        return Response(ChargebackOutputSerializer(chargeback).data)


class ChargebackEvidenceApi(_ChargebacksApi):
    required_scopes = {"POST": "payments:write"}
    serializer_class = EvidenceOutputSerializer

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
        evidence = evidence_save_draft(
            chargeback=chargeback, text=data.validated_data["text"], actor=request.user
        )
        if data.validated_data["submit"]:
            evidence = evidence_submit(chargeback=chargeback, actor=request.user)
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


# --- Payout accounts (micro-deposit verification) ----------------------------------------------


class PayoutAccountApi(ApiMixin, generics.GenericAPIView):
    """The merchant's payout account: a merchant token acts for its own merchant, a staff token
    names one (`merchant`, in the body or the query)."""

    required_scopes = {"GET": "merchants:read", "POST": "merchants:write"}
    serializer_class = PayoutAccountOutputSerializer

    @extend_schema(
        parameters=[OpenApiParameter("merchant", OpenApiTypes.INT, description="staff tokens")],
        responses={200: PayoutAccountOutputSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        """The current payout account and its verification state (the number masked)."""
        query = MerchantQueryInputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        merchant = merchant_for_request(request, query.validated_data.get("merchant"))
        account = selectors.payout_account_current(merchant_id=merchant.pk)
        if account is None:
            raise NotFound("This merchant has no payout account yet.")
        return Response(PayoutAccountOutputSerializer(account, context={"request": request}).data)

    @extend_schema(
        request=PayoutAccountCreateInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: PayoutAccountOutputSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="in flight, or the account belongs to another merchant"
            ),
            503: OpenApiResponse(ErrorSerializer, description="no bank rail is configured"),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        """Add the payout account (replacing the previous one) and send its two micro-deposits;
        confirm their amounts at `payout-account/confirm/`."""
        data = PayoutAccountCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        merchant = merchant_for_request(request, values.pop("merchant", None))

        def run() -> Response:
            account = payout_account_add(merchant=merchant, **values, actor=request.user)
            return Response(
                PayoutAccountOutputSerializer(account, context={"request": request}).data,
                status=status.HTTP_201_CREATED,
            )

        return idempotent(request, self, run)


class PayoutAccountConfirmApi(ApiMixin, generics.GenericAPIView):
    required_scopes = {"POST": "merchants:write"}
    serializer_class = PayoutAccountOutputSerializer

    @extend_schema(
        request=PayoutAccountConfirmInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            200: PayoutAccountOutputSerializer,
            404: ErrorSerializer,
            409: OpenApiResponse(
                ErrorSerializer,
                description="verified already, locked, expired, failed, or still on its way",
            ),
            422: OpenApiResponse(
                ErrorSerializer, description="wrong amounts (the attempt counts), or key reused"
            ),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        """Confirm the two micro-deposit amounts. A wrong pair counts an attempt; the last
        allowed one locks the account; after the window the account expires."""
        data = PayoutAccountConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        merchant = merchant_for_request(request, data.validated_data.get("merchant"))
        account = selectors.payout_account_current(merchant_id=merchant.pk)
        if account is None:
            raise NotFound("This merchant has no payout account yet.")

        def run() -> Response:
            confirmed = payout_account_confirm(
                account=account, amounts=data.validated_data["amounts"], actor=request.user
            )
            confirmed = selectors.payout_account_current(merchant_id=merchant.pk) or confirmed
            return Response(
                PayoutAccountOutputSerializer(confirmed, context={"request": request}).data
            )

        return idempotent(request, self, run)


class MerchantPayoutsApi(_MerchantsApi):
    required_scopes = {"POST": "merchants:write"}
    staff_only = True
    serializer_class = MerchantPayoutsOutputSerializer

    @extend_schema(
        request=MerchantPayoutsInputSerializer,
        responses={
            200: MerchantPayoutsOutputSerializer,
            409: OpenApiResponse(ErrorSerializer, description="no verified payout account"),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        """Enable or disable payouts; enabling needs a verified payout account."""
        merchant = get_object_or_404(self.get_queryset(), pk=pk)
        data = MerchantPayoutsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        merchant = merchant_payouts_set(
            merchant=merchant, enabled=data.validated_data["enabled"], actor=request.user
        )
        return Response(MerchantPayoutsOutputSerializer(merchant).data)
