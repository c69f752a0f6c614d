from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from kyc.overview import overview
from payments.inbox.views import braintree_webhook, sandbox_webhook, stripe_webhook
from payments.integration.views import NotFoundApi

from . import health, home, metrics

urlpatterns = [
    path("", home.home, name="home"),
    path("overview/", overview, name="overview"),
    path("admin/", admin.site.urls),
    path("", include("payments.urls")),
    path("kyc/", include("kyc.urls")),
    path("audits/", include("audits.urls")),
    path("api/v1/", include("payments.api.urls")),
    path("api/v1/", include("kyc.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI with its start-up script as a separate file, so the CSP needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Any other path under /api/ answers in the API's JSON error shape.
    re_path(r"^api/", NotFoundApi.as_view()),
    path("webhooks/stripe/", stripe_webhook, name="webhook-stripe"),
    path("webhooks/braintree/", braintree_webhook, name="webhook-braintree"),
    path("webhooks/sandbox/", sandbox_webhook, name="webhook-sandbox"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]

# JSON errors under /api/ (when DEBUG is off), pages in the app's layout elsewhere.
handler403 = "config.errors.handler403"
handler404 = "config.errors.handler404"
handler500 = "config.errors.handler500"
