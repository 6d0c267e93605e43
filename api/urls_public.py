from django.urls import path

from api import billing_views as billing
from api.platform_views import ShopListCreateApi
from api.urls_common import schema_patterns

urlpatterns = [
    path("v1/shops/", ShopListCreateApi.as_view(), name="api-shops"),
    path("v1/plans/", billing.PlanListApi.as_view(), name="api-plans"),
    path("v1/billing/revenue/", billing.RevenueApi.as_view(), name="api-billing-revenue"),
    path("v1/billing/subscriptions/", billing.SubscriptionListApi.as_view(), name="api-billing-subscriptions"),
    path("v1/billing/invoices/", billing.InvoiceListApi.as_view(), name="api-billing-invoices-all"),
    *schema_patterns("platform_core.urls_public", "Kameng platform API"),
]
