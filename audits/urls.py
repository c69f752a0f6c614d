from django.urls import path

from . import enrolment, views

app_name = "audits"

urlpatterns = [
    path("", views.search, name="search"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("evidence.json", views.export_evidence, name="export-evidence"),
    path("objects/<str:object_type>/<str:object_id>/", views.object_timeline, name="object"),
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
