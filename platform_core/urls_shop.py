"""Every shop host: storefront, shop console, shop API, webhooks."""
from django.urls import include, path

from platform_core import views
from platform_core.admin_sites import shop_console

urlpatterns = [
    path("", include("platform_core.storefront.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("manage/", shop_console.urls),
    path("api/", include("api.urls_shop")),
    path("hooks/payments/", include("platform_core.payments.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
]
