"""Installed plugins: every app whose AppConfig is a PluginAppConfig."""
from __future__ import annotations

from functools import lru_cache

from django.apps import apps

from plugins.base import Plugin, PluginAppConfig


class UnknownPlugin(LookupError):
    pass


@lru_cache(maxsize=1)
def installed_plugins() -> dict[str, type[Plugin]]:
    found: dict[str, type[Plugin]] = {}
    for app_config in apps.get_app_configs():
        if not isinstance(app_config, PluginAppConfig):
            continue
        plugin_class = app_config.get_plugin_class()
        if not plugin_class.slug:
            raise ValueError(f"plugin {plugin_class!r} of app {app_config.name} has no slug")
        if plugin_class.slug in found:
            raise ValueError(f"two plugins use the slug {plugin_class.slug!r}")
        found[plugin_class.slug] = plugin_class
    return dict(sorted(found.items(), key=lambda item: (item[1].kind, item[1].name)))


def get_plugin_class(slug: str) -> type[Plugin]:
    try:
        return installed_plugins()[slug]
    except KeyError:
        raise UnknownPlugin(f"no plugin {slug!r} is installed") from None
