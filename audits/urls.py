from django.urls import path

from . import enrolment, views
from .compliance import views as compliance

app_name = "audits"

urlpatterns = [
    path("", views.search, name="search"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("evidence.json", views.export_evidence, name="export-evidence"),
    path("objects/<str:object_type>/<str:object_id>/", views.object_timeline, name="object"),
    path("compliance/", compliance.compliance, name="compliance"),
    path("compliance/run", compliance.compliance_run, name="compliance-run"),
    path(
        "compliance/<int:pk>.<str:fmt>",
        compliance.compliance_download,
        name="compliance-download",
    ),
    path("second-factor/", enrolment.second_factor, name="second-factor"),
    path(
        "second-factor/<int:pk>/confirm/",
        enrolment.second_factor_confirm,
        name="second-factor-confirm",
    ),
    path(
        "second-factor/<int:pk>/remove/",
        enrolment.second_factor_remove,
        name="second-factor-remove",
    ),
]
