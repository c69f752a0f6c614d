from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework.permissions import DjangoModelPermissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from .serializers import MerchantContactInputSerializer, MerchantOutputSerializer


class MerchantPermissions(DjangoModelPermissions):
    perms_map = {**DjangoModelPermissions.perms_map, "GET": ["%(app_label)s.view_%(model_name)s"]}


class MerchantListApi(APIView):
    permission_classes = [MerchantPermissions]
    queryset = selectors.merchant_list()

    def get(self, request: Request) -> Response:
        merchants = selectors.merchant_list()[:100]
        return Response(MerchantOutputSerializer(merchants, many=True).data)


class MerchantDetailApi(APIView):
    permission_classes = [MerchantPermissions]
    queryset = selectors.merchant_list()

    def get(self, request: Request, pk: int) -> Response:
        merchant = get_object_or_404(selectors.merchant_list(), pk=pk)
        return Response(MerchantOutputSerializer(merchant).data)

    def patch(self, request: Request, pk: int) -> Response:
        """Update a merchant's contact details."""
        merchant = get_object_or_404(selectors.merchant_list(), pk=pk)
        data = MerchantContactInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # No explicit actor: the audit context reads the user DRF authenticated in this view.
        merchant = services.merchant_update_contact(merchant=merchant, **data.validated_data)
        return Response(MerchantOutputSerializer(merchant).data)
