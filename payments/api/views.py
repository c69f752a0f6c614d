"""DRF views: validate, call one service or selector, serialize. Domain errors are mapped to
HTTP by payments.integration.errors; nothing here catches them."""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from audits.models import PaymentAudit
from config.request_types import AuthenticatedRequest

from ..integration.errors import ErrorSerializer
from ..integration.idempotency import client_key, idempotent
from ..integration.permissions import merchant_for_request, merchant_scope
from ..integration.schema import error_response, idempotent_operation
from ..integration.views import ApiMixin, IdCursorPagination, RowActionApi, validated
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


class AuditCursorPagination(IdCursorPagination):
    ordering = ("-created_at", "-id")

    def position_is_valid(self, position: str) -> bool:
        try:
            return parse_datetime(position) is not None
        except ValueError:
            return False


# Each view below reads its rows through one of these: the merchants (staff tokens only), or the
# payments and chargebacks of the token's own merchant (all of them for a staff token); its
# answers are the rows' serializer unless it names another.


class _MerchantsApi(ApiMixin, generics.GenericAPIView):
    serializer_class: type[BaseSerializer[Any]] | None = MerchantOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.merchant_list_api()


class _PaymentsApi(ApiMixin, generics.GenericAPIView):
    serializer_class: type[BaseSerializer[Any]] | None = PaymentOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.payment_list_api(merchant_id=merchant_scope(self.request))


class _ChargebacksApi(ApiMixin, generics.GenericAPIView):
    serializer_class: type[BaseSerializer[Any]] | None = ChargebackOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.chargeback_list_api(merchant_id=merchant_scope(self.request))


# --- Merchants (staff tokens) ----------------------------------------------------------------


class MerchantListApi(_MerchantsApi, generics.ListAPIView):
    required_scopes = {"GET": "merchants:read", "POST": "merchants:write"}
    required_permissions = {"POST": "payments.add_merchant"}
    staff_only = True

    @extend_schema(request=MerchantCreateInputSerializer, responses={201: MerchantOutputSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        values = validated(MerchantCreateInputSerializer, request.data)
        merchant = merchant_create(**values, actor=request.user)
        return Response(
            MerchantOutputSerializer(merchant, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class MerchantDetailApi(_MerchantsApi, generics.RetrieveAPIView):
    required_scopes = {"GET": "merchants:read", "PATCH": "merchants:write"}
    staff_only = True

    @extend_schema(request=MerchantContactInputSerializer, responses=MerchantOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        """Update a merchant's contact details."""
        merchant = self.get_object()
        values = validated(MerchantContactInputSerializer, request.data)
        # No explicit actor: the audit context reads the user DRF authenticated in this view.
        merchant = merchant_update_contact(merchant=merchant, **values)
        return Response(MerchantOutputSerializer(merchant, context={"request": request}).data)


# --- Payments ----------------------------------------------------------------------------------


class PaymentListApi(_PaymentsApi, generics.ListAPIView):
    required_scopes = {"GET": "payments:read", "POST": "payments:write"}
    required_permissions = {"POST": "payments.add_payment"}
    filter_backends = [DjangoFilterBackend]
    filterset_class = PaymentFilter

    @idempotent_operation(
        request=PaymentCreateInputSerializer,
        responses={
            201: PaymentOutputSerializer,
            402: error_response("declined by the gateway"),
            409: error_response("a request with this key is still in flight"),
            422: error_response("key reused with another body, or refused"),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        """Create a payment through its gateway (authorize, and capture unless told not to)."""
        values = validated(PaymentCreateInputSerializer, request.data)
        merchant = merchant_for_request(request, values.pop("merchant", None))

        def run() -> Response:
            # A retry after a lost gateway answer finds the first attempt's row by this key.
            payment = payment_authorize(
                merchant=merchant, **values, client_key=client_key(request), actor=request.user
            )
            return Response(PaymentOutputSerializer(payment).data, status=status.HTTP_201_CREATED)

        return idempotent(request, self, run)


class PaymentDetailApi(_PaymentsApi, generics.RetrieveAPIView):
    required_scopes = {"GET": "payments:read"}


class PaymentCancelApi(_PaymentsApi, RowActionApi):
    """Cancel an authorized (not yet captured) payment at its gateway."""

    required_scopes = {"POST": "payments:write"}
    refusals = {409: "the payment can no longer be canceled"}

    def act(self, payment: Any, values: dict[str, Any], actor: Any) -> Any:
        return payment_cancel(payment=payment, actor=actor)


class PaymentRefundApi(_PaymentsApi):
    required_scopes = {"POST": "payments:write"}
    required_permissions = {"POST": "payments.add_refund"}
    serializer_class = RefundOutputSerializer

    @idempotent_operation(
        request=RefundCreateInputSerializer,
        responses={
            201: RefundOutputSerializer,
            202: ApprovalOutputSerializer,
            409: error_response("in flight, or the payment is not refundable"),
            422: error_response("key reused with another body, or too much"),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        """Refund part or all of a captured payment. Above the approval threshold the refund
        waits for a second person: 202 with the approval request."""
        payment = self.get_object()
        values = validated(RefundCreateInputSerializer, request.data)

        def run() -> Response:
            result = refund_request(payment=payment, **values, actor=request.user)
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


class ChargebackListApi(_ChargebacksApi, generics.ListAPIView):
    required_scopes = {"GET": "payments:read"}
    filter_backends = [DjangoFilterBackend]
    filterset_class = ChargebackFilter


class ChargebackDetailApi(_ChargebacksApi, generics.RetrieveAPIView):
    required_scopes = {"GET": "payments:read"}


class ChargebackEvidenceApi(_ChargebacksApi, RowActionApi):
    """Save the evidence text and, unless `submit` is false, send it to the gateway once."""

    required_scopes = {"POST": "payments:write"}
    input_serializer_class = EvidenceInputSerializer
    serializer_class = EvidenceOutputSerializer
    refusals = {409: "already submitted, or the dispute is closed"}

    def act(self, chargeback: Any, values: dict[str, Any], actor: Any) -> Any:
        evidence = evidence_save_draft(chargeback=chargeback, text=values["text"], actor=actor)
        if values["submit"]:
            evidence = evidence_submit(chargeback=chargeback, actor=actor)
        return evidence


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
        rows = selectors.audit_rows_for(
            **validated(AuditQueryInputSerializer, request.query_params)
        )
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
        query = validated(MerchantQueryInputSerializer, request.query_params)
        merchant = merchant_for_request(request, query.get("merchant"))
        account = selectors.payout_account_current(merchant_id=merchant.pk)
        if account is None:
            raise NotFound("This merchant has no payout account yet.")
        return Response(PayoutAccountOutputSerializer(account, context={"request": request}).data)

    @idempotent_operation(
        request=PayoutAccountCreateInputSerializer,
        responses={
            201: PayoutAccountOutputSerializer,
            409: error_response("in flight, or the account belongs to another merchant"),
            503: error_response("no bank rail is configured"),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        """Add the payout account (replacing the previous one) and send its two micro-deposits;
        confirm their amounts at `payout-account/confirm/`."""
        values = validated(PayoutAccountCreateInputSerializer, request.data)
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

    @idempotent_operation(
        request=PayoutAccountConfirmInputSerializer,
        responses={
            200: PayoutAccountOutputSerializer,
            404: ErrorSerializer,
            409: error_response("verified already, locked, expired, failed, or still on its way"),
            422: error_response("wrong amounts (the attempt counts), or key reused"),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        """Confirm the two micro-deposit amounts. A wrong pair counts an attempt; the last
        allowed one locks the account; after the window the account expires."""
        values = validated(PayoutAccountConfirmInputSerializer, request.data)
        merchant = merchant_for_request(request, values.get("merchant"))
        account = selectors.payout_account_current(merchant_id=merchant.pk)
        if account is None:
            raise NotFound("This merchant has no payout account yet.")

        def run() -> Response:
            confirmed = payout_account_confirm(
                account=account, amounts=values["amounts"], actor=request.user
            )
            confirmed = selectors.payout_account_current(merchant_id=merchant.pk) or confirmed
            return Response(
                PayoutAccountOutputSerializer(confirmed, context={"request": request}).data
            )

        return idempotent(request, self, run)


class MerchantPayoutsApi(_MerchantsApi, RowActionApi):
    """Enable or disable payouts; enabling needs a verified payout account."""

    required_scopes = {"POST": "merchants:write"}
    staff_only = True
    input_serializer_class = MerchantPayoutsInputSerializer
    serializer_class = MerchantPayoutsOutputSerializer
    refusals = {409: "no verified payout account"}

    def act(self, merchant: Any, values: dict[str, Any], actor: Any) -> Any:
        return merchant_payouts_set(merchant=merchant, enabled=values["enabled"], actor=actor)
