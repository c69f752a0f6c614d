from payments.integration.routes import api_path, resource_paths

from . import views

urlpatterns = [
    *resource_paths(
        "kyc-cases",
        views.KycCaseListApi,
        views.KycCaseDetailApi,
        submit=views.KycCaseSubmitApi,
        resubmit=views.KycCaseResubmitApi,
        documents=views.KycDocumentUploadApi,
    ),
    api_path("merchants/<int:pk>/beneficial-owners/", views.BeneficialOwnerListApi),
    api_path("beneficial-owners/<int:pk>/", views.BeneficialOwnerDetailApi),
]
