from django.urls import path

from .views import MerchantDetailApi, MerchantListApi

urlpatterns = [
    path("merchants/", MerchantListApi.as_view(), name="api-merchant-list"),
    path("merchants/<int:pk>/", MerchantDetailApi.as_view(), name="api-merchant-detail"),
]
