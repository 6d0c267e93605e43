"""The shop URLconf with the payment webhooks included, as platform_core/urls_shop.py
has them once wired (``path("hooks/payments/", include("platform_core.payments.urls"))``).
Tests select it with override_settings(ROOT_URLCONF=...)."""
from django.urls import include, path

from platform_core.urls_shop import urlpatterns as shop_urlpatterns

urlpatterns = [
    path("hooks/payments/", include("platform_core.payments.urls")),
    *shop_urlpatterns,
]
