"""Reads of plugin state for consoles and the API."""
from __future__ import annotations

from dataclasses import dataclass

from plugins.models import PluginConfig
from plugins.registry import installed_plugins


@dataclass
class PluginListing:
    slug: str
    name: str
    kind: str
    version: str
    description: str
    enabled: bool
    configured: bool
    unavailable_reason: str | None


def plugin_list(*, shop) -> list[PluginListing]:
    configs = {c.slug: c for c in PluginConfig.objects.all()}
    listing = []
    for slug, plugin_class in installed_plugins().items():
        config = configs.get(slug)
        reason = plugin_class.unavailable_reason(shop)
        listing.append(PluginListing(
            slug=slug, name=str(plugin_class.name), kind=str(plugin_class.kind), version=plugin_class.version,
            description=str(plugin_class.description), enabled=bool(config and config.enabled),
            configured=bool(config and (config.settings or config.secrets)),
            unavailable_reason=str(reason) if reason else None,
        ))
    return listing
