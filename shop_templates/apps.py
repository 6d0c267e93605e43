from django.apps import AppConfig


class ShopTemplatesConfig(AppConfig):
    name = "shop_templates"
    verbose_name = "Storefront themes"
