from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "platform_core.payments"
    label = "payments"
