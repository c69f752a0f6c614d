from django.urls import path

from . import views

app_name = "audits"

urlpatterns = [
    path("", views.search, name="search"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("evidence.json", views.export_evidence, name="export-evidence"),
    path("objects/<str:object_type>/<str:object_id>/", views.object_timeline, name="object"),
]
