from django.urls import path

from ..integration import schema  # noqa: F401 (registers the token scheme)
from . import views

urlpatterns = [
    path("merchants/", views.MerchantListApi.as_view(), name="api-merchant-list"),
    path("merchants/<int:pk>/", views.MerchantDetailApi.as_view(), name="api-merchant-detail"),
    path(
        "merchants/<int:pk>/payouts/",
        views.MerchantPayoutsApi.as_view(),
        name="api-merchant-payouts",
    ),
    path("payout-account/", views.PayoutAccountApi.as_view(), name="api-payout-account"),
    path(
        "payout-account/confirm/",
        views.PayoutAccountConfirmApi.as_view(),
        name="api-payout-account-confirm",
    ),
    path("payments/", views.PaymentListApi.as_view(), name="api-payment-list"),
    path("payments/<int:pk>/", views.PaymentDetailApi.as_view(), name="api-payment-detail"),
    path("payments/<int:pk>/cancel/", views.PaymentCancelApi.as_view(), name="api-payment-cancel"),
    path("payments/<int:pk>/refunds/", views.PaymentRefundApi.as_view(), name="api-payment-refund"),
    path("chargebacks/", views.ChargebackListApi.as_view(), name="api-chargeback-list"),
    path(
        "chargebacks/<int:pk>/",
        views.ChargebackDetailApi.as_view(),
        name="api-chargeback-detail",
    ),
    path(
        "chargebacks/<int:pk>/evidence/",
        views.ChargebackEvidenceApi.as_view(),
        name="api-chargeback-evidence",
    ),
    path("audit-trail/", views.AuditTrailApi.as_view(), name="api-audit-trail"),
]
