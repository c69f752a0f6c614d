from ..integration import schema  # noqa: F401 (registers the token scheme)
from ..integration.routes import api_path, resource_paths
from . import views

urlpatterns = [
    *resource_paths(
        "merchants",
        views.MerchantListApi,
        views.MerchantDetailApi,
        payouts=views.MerchantPayoutsApi,
    ),
    api_path("payout-account/", views.PayoutAccountApi),
    api_path("payout-account/confirm/", views.PayoutAccountConfirmApi),
    *resource_paths(
        "payments",
        views.PaymentListApi,
        views.PaymentDetailApi,
        cancel=views.PaymentCancelApi,
        refunds=views.PaymentRefundApi,
    ),
    *resource_paths(
        "chargebacks",
        views.ChargebackListApi,
        views.ChargebackDetailApi,
        evidence=views.ChargebackEvidenceApi,
    ),
    api_path("audit-trail/", views.AuditTrailApi),
]
