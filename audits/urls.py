from django.urls import path

from config.screens import routes

from . import enrolment, views
from .compliance import views as compliance

app_name = "audits"

# The trail's own screens' routes and names stand on their views, in their @screen(url=...).
urlpatterns = [
    *routes(views),
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
