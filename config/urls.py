from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from payments import webhook_views
from payments.api.views import NotFoundApi

from . import health, home

urlpatterns = [
    path("", home.home, name="home"),
    path("admin/", admin.site.urls),
    path("", include("payments.urls")),
    path("kyc/", include("kyc.urls")),
    path("audits/", include("audits.urls")),
    path("api/v1/", include("payments.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Any other path under /api/ answers in the API's JSON error shape.
    re_path(r"^api/", NotFoundApi.as_view()),
    path("webhooks/stripe/", webhook_views.stripe_webhook, name="webhook-stripe"),
    path("webhooks/braintree/", webhook_views.braintree_webhook, name="webhook-braintree"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]

# JSON errors under /api/ (when DEBUG is off), Django's pages elsewhere.
handler404 = "payments.api.errors.handler404"
handler500 = "payments.api.errors.handler500"
