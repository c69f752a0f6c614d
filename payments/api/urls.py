from django.urls import path

from . import kyc, schema, views  # noqa: F401 (schema registers the token scheme)

urlpatterns = [
    path("merchants/", views.MerchantListApi.as_view(), name="api-merchant-list"),
    path("merchants/<int:pk>/", views.MerchantDetailApi.as_view(), name="api-merchant-detail"),
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
    path("kyc-cases/", kyc.KycCaseListApi.as_view(), name="api-kyc-case-list"),
    path("kyc-cases/<int:pk>/", kyc.KycCaseDetailApi.as_view(), name="api-kyc-case-detail"),
    path("kyc-cases/<int:pk>/submit/", kyc.KycCaseSubmitApi.as_view(), name="api-kyc-case-submit"),
    path(
        "kyc-cases/<int:pk>/resubmit/",
        kyc.KycCaseResubmitApi.as_view(),
        name="api-kyc-case-resubmit",
    ),
    path(
        "kyc-cases/<int:pk>/documents/",
        kyc.KycDocumentUploadApi.as_view(),
        name="api-kyc-document-upload",
    ),
    path("audit-trail/", views.AuditTrailApi.as_view(), name="api-audit-trail"),
]
