from django.apps import AppConfig


class NoticesConfig(AppConfig):
    name = "platform_core.notices"
    label = "notices"
