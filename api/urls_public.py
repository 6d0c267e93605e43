from django.urls import path

from api.platform_views import ShopListCreateApi
from api.urls_common import schema_patterns

urlpatterns = [
    path("v1/shops/", ShopListCreateApi.as_view(), name="api-shops"),
    *schema_patterns("platform_core.urls_public", "Kameng platform API"),
]
