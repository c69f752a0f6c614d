from django.contrib import admin
from django.urls import include, path

from payments import webhook_views

from . import health, home

urlpatterns = [
    path("", home.home, name="home"),
    path("admin/", admin.site.urls),
    path("", include("payments.urls")),
    path("kyc/", include("kyc.urls")),
    path("audits/", include("audits.urls")),
    path("api/v1/", include("payments.api.urls")),
    path("webhooks/stripe/", webhook_views.stripe_webhook, name="webhook-stripe"),
    path("webhooks/braintree/", webhook_views.braintree_webhook, name="webhook-braintree"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
