from django.urls import path

from api.shop_views import PluginDetailApi, PluginListApi, ShopDetailApi
from api.urls_common import schema_patterns

urlpatterns = [
    path("v1/shop/", ShopDetailApi.as_view(), name="api-shop"),
    path("v1/plugins/", PluginListApi.as_view(), name="api-plugins"),
    path("v1/plugins/<slug:slug>/", PluginDetailApi.as_view(), name="api-plugin"),
    *schema_patterns("platform_core.urls_shop", "Kameng shop API"),
]
