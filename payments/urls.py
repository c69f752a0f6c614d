from django.urls import path

from . import views

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
    path("disputes/", views.dispute_list, name="dispute-list"),
    path("disputes/<int:pk>/", views.dispute_detail, name="dispute-detail"),
    path("disputes/<int:pk>/<slug:action>", views.dispute_action, name="dispute-action"),
]
