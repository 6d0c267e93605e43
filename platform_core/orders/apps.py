from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "platform_core.orders"
    label = "orders"
