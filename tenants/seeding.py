"""What a new shop starts with. Each seeder is called inside the new shop's schema
within the provisioning transaction; apps add theirs to ``KAMENG_SHOP_SEEDERS``."""
from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string


def run_seeders(shop, *, sample_catalog: bool) -> None:
    for path in settings.KAMENG_SHOP_SEEDERS:
        import_string(path)(shop, sample_catalog=sample_catalog)


def seed_welcome_notice(shop, *, sample_catalog: bool) -> None:
    """Sample content: a welcome banner through the store-notice plugin, by slug."""
    if not sample_catalog:
        return
    from plugins.registry import installed_plugins
    from plugins.services import plugin_configure

    if "store-notice" not in installed_plugins():
        return
    message = ("欢迎光临 {name}！这是一个演示店铺。" if shop.language == "zh-hans" else
               "Welcome to {name}! This is a sample shop.").format(name=shop.name)
    plugin_configure(shop=shop, slug="store-notice", data={"message": message, "style": "info"}, enable=True)
