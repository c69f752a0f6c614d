from django.urls import path

from . import views

urlpatterns = [
    path("kyc-cases/", views.KycCaseListApi.as_view(), name="api-kyc-case-list"),
    path("kyc-cases/<int:pk>/", views.KycCaseDetailApi.as_view(), name="api-kyc-case-detail"),
    path(
        "kyc-cases/<int:pk>/submit/", views.KycCaseSubmitApi.as_view(), name="api-kyc-case-submit"
    ),
    path(
        "kyc-cases/<int:pk>/resubmit/",
        views.KycCaseResubmitApi.as_view(),
        name="api-kyc-case-resubmit",
    ),
    path(
        "kyc-cases/<int:pk>/documents/",
        views.KycDocumentUploadApi.as_view(),
        name="api-kyc-document-upload",
    ),
    path(
        "merchants/<int:pk>/beneficial-owners/",
        views.BeneficialOwnerListApi.as_view(),
        name="api-beneficial-owner-list",
    ),
    path(
        "beneficial-owners/<int:pk>/",
        views.BeneficialOwnerDetailApi.as_view(),
        name="api-beneficial-owner-detail",
    ),
]
