"""Billing URLs: the platform gateway's webhook (platform host) and the shop console's
billing pages (added to the ShopConsole by platform_core.admin_sites)."""
from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    # /billing/hooks/sandbox/, /billing/hooks/stripe/: only the configured provider's answers
    path("hooks/<slug:provider>/", views.gateway_webhook, name="gateway_webhook"),
]


def billing_console_urls(admin_view):
    return [
        path("billing/", admin_view(views.shop_billing_view), name="billing"),
        path("billing/plan/", admin_view(views.shop_change_plan_view), name="billing_change_plan"),
        path("billing/cancel/", admin_view(views.shop_cancel_view), name="billing_cancel"),
        path("billing/invoices/<int:invoice_id>/pay/", admin_view(views.shop_pay_view), name="billing_pay"),
        path("billing/invoices/<int:invoice_id>/pdf/", admin_view(views.shop_invoice_download_view),
             name="billing_invoice_download"),
        # the token is the permission (it expires); works for a suspended shop too (/manage/ is exempt)
        path("billing/file/<str:token>/", views.signed_file_view, name="billing_file"),
    ]
