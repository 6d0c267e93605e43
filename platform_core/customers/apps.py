from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "platform_core.customers"
    label = "customers"
