"""Storefront routes; platform_core/urls_shop.py includes them at the site root."""
from django.urls import path

from platform_core.storefront import views

app_name = "storefront"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<int:category_id>/", views.home, name="category"),
    path("p/<int:product_id>/", views.product, name="product"),
    path("p/<int:product_id>/price.json", views.product_price, name="product_price"),
    path("order/<str:number>/", views.order_page, name="order"),
    path("order/<str:number>/status.json", views.order_status, name="order_status"),
    path("order/<str:number>/pay/", views.order_pay, name="order_pay"),
    path("order/<str:number>/cancel/", views.order_cancel_view, name="order_cancel"),
    path("order/<str:number>/ticket/", views.ticket_open_view, name="ticket_open"),
    path("order/<str:number>/ticket/<int:ticket_id>/reply/", views.ticket_reply_view, name="ticket_reply"),
    path("lookup/", views.lookup, name="lookup"),
    path("account/", views.account, name="account"),
    path("account/register/", views.register, name="register"),
    path("account/login/", views.login, name="login"),
    path("account/logout/", views.logout, name="logout"),
    path("account/topup/", views.account_topup, name="topup"),
]
