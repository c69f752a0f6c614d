from django.urls import path

from . import views

app_name = "kyc"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("take-next", views.take_next, name="take-next"),
    path("cases/<int:pk>/", views.case_detail, name="case"),
    path("cases/<int:pk>/note", views.case_note, name="case-note"),
    path("cases/<int:pk>/documents/review", views.document_review, name="document-review"),
    path("cases/<int:pk>/screening/dispose", views.screening_dispose, name="screening-dispose"),
    path("cases/<int:pk>/<slug:action>", views.case_action, name="case-action"),
    path("documents/<int:pk>/<slug:disposition>", views.document_file, name="document-file"),
    path("merchants/<int:pk>/", views.merchant_detail, name="merchant"),
    path("merchants/<int:pk>/suspend", views.merchant_suspend, name="merchant-suspend"),
    path("merchants/<int:pk>/owners/add", views.owner_add, name="owner-add"),
    path("owners/<int:pk>/", views.owner_edit, name="owner-edit"),
    path(
        "merchants/<int:pk>/subject-export",
        views.merchant_subject_export,
        name="merchant-subject-export",
    ),
    path(
        "merchants/<int:pk>/subject-erase",
        views.merchant_subject_erase,
        name="merchant-subject-erase",
    ),
]
