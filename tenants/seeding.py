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


def seed_payment_methods(shop, *, sample_catalog: bool) -> None:
    """Sample shops take (test) payments at once: the bundled sandbox gateway and the
    wallet, by slug; skipped where a plugin is not installed or not available."""
    if not sample_catalog:
        return
    import secrets

    from plugins.registry import installed_plugins
    from plugins.services import plugin_configure

    installed = installed_plugins()
    wanted = {"sandbox": {"api_key": "sk_sandbox_" + secrets.token_hex(16)}, "wallet": {}}
    for slug, data in wanted.items():
        plugin_class = installed.get(slug)
        if plugin_class is not None and not plugin_class.unavailable_reason(shop):
            plugin_configure(shop=shop, slug=slug, data=data, enable=True)
