from django.urls import path

from . import views
from .fraud import views as fraud_views

app_name = "payments"

urlpatterns = [
    path("payments/", views.payment_list, name="payment-list"),
    path("payments/export.csv", views.payment_export, name="payment-export"),
    path("payments/approvals/", views.approval_inbox, name="approvals"),
    path("payments/reconciliation/", views.reconciliation, name="reconciliation"),
    path("payments/approvals/<int:pk>/decide", views.approval_decide, name="approval-decide"),
    path("payments/webhooks/", views.webhook_list, name="webhook-list"),
    path("payments/webhooks/<int:pk>/replay", views.webhook_replay, name="webhook-replay"),
    path("payments/<int:pk>/", views.payment_detail, name="payment-detail"),
    path("payments/fraud/alerts/", fraud_views.alert_queue, name="fraud-alerts"),
    path("payments/fraud/alerts/<int:pk>/", fraud_views.alert_detail, name="fraud-alert"),
    path(
        "payments/fraud/alerts/<int:pk>/<slug:action>",
        fraud_views.alert_action,
        name="fraud-alert-action",
    ),
    path("payments/fraud/rules/", fraud_views.rule_list, name="fraud-rules"),
    path("payments/fraud/rules/<int:pk>/", fraud_views.rule_detail, name="fraud-rule"),
    path("disputes/", views.dispute_list, name="dispute-list"),
    path("disputes/<int:pk>/", views.dispute_detail, name="dispute-detail"),
    path("disputes/<int:pk>/<slug:action>", views.dispute_action, name="dispute-action"),
]
