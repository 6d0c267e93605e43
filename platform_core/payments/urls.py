"""Included by platform_core/urls_shop.py under ``hooks/payments/``."""
from django.urls import path

from platform_core.payments import views

urlpatterns = [
    path("<slug:slug>/", views.payment_webhook, name="payment_webhook"),
    path("<slug:slug>/<slug:account>/", views.payment_webhook, name="payment_webhook_account"),
]
