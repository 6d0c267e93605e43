from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "platform_core.inventory"
    label = "inventory"
