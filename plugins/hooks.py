"""Named hook points, called only on the plugins the current shop has enabled.

Two shapes, after pretix and saleor:

* :func:`collect` calls every enabled plugin that implements the hook and returns
  their non-None answers (e.g. banners to show on the storefront);
* :func:`pipeline` folds a value through them, each receiving the previous one
  (e.g. a price that coupons and tier prices adjust in turn).

The core calls hooks by name; it never imports a plugin module.
"""
from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from django.db import connection

from platform_core.cache import read_on_every_shop_request, remembered_for_request
from platform_core.db.rows import new_row
from plugins.registry import installed_plugins

logger = logging.getLogger(__name__)

#: every hook point the core calls, with what it means; calling another name is a bug
HOOKS = {
    "storefront_banners": "collect: banners {message, style, link} shown on top of storefront pages",
    "price_adjust": "pipeline: adjust a price in minor units for (product, buyer, quantity)",
    "shop_provisioned": "collect: a new shop was created (runs in the shop's schema)",
}

ENABLED_CACHE_KEY = "plugins:enabled:v2"
ENABLED_CACHE_SECONDS = 300
# in the shop's schema, so the cache key function makes it the shop's own
read_on_every_shop_request(lambda shop: ENABLED_CACHE_KEY)


class UnknownHook(LookupError):
    pass


def _enabled_rows() -> list[dict[str, Any]]:
    """The current shop's enabled plugin rows with their merchant accounts (a payment
    reads them on every start and webhook), cached per shop (the cache key function
    prefixes every key with the schema name). Every write of a configuration or an
    account forgets them."""
    rows = cache.get(ENABLED_CACHE_KEY)
    if rows is None:
        from plugins.models import PluginAccount, PluginConfig

        rows = list(PluginConfig.objects.filter(enabled=True).values("id", "slug", "settings", "secrets"))
        accounts = list(PluginAccount.objects.filter(config_id__in=[row["id"] for row in rows]).values())
        for row in rows:
            row["accounts"] = [account for account in accounts if account["config_id"] == row["id"]]
        cache.set(ENABLED_CACHE_KEY, rows, ENABLED_CACHE_SECONDS)
    return rows


def forget_enabled_cache() -> None:
    cache.delete(ENABLED_CACHE_KEY)


def enabled_plugins(shop=None):
    """Instances of the plugins enabled in the current shop (empty on public)."""
    shop = shop or getattr(connection, "tenant", None)
    if shop is None or connection.schema_name == "public" or not getattr(shop, "pk", None):
        return []
    # a checkout asks several times per request; any cache write (so any configuration
    # or account change) forgets the remembered list
    return list(remembered_for_request(("enabled_plugins", connection.schema_name, shop.pk),
                                       lambda: _enabled_plugins_of(shop)))


def _enabled_plugins_of(shop) -> list:
    # built anew when the installed plugins change (tests install their own)
    configured = cache.derived(ENABLED_CACHE_KEY, _configured_plugins, also=tuple(installed_plugins().values()))
    if configured is None:  # not cached: read and cache the rows, then build from them
        configured = _configured_plugins(_enabled_rows())
    # the plan may change without the rows: asked on every request
    return [plugin_class(shop, config) for plugin_class, config in configured
            if not plugin_class.unavailable_reason(shop)]


def _configured_plugins(rows: list[dict[str, Any]]) -> tuple:
    """(plugin class, configuration with its accounts) of each enabled row whose plugin
    is installed. Built once per process for each cached value of the rows (decision
    0052): the configurations are shared by every request of the shop, never changed."""
    from plugins.models import PluginAccount, PluginConfig

    installed = installed_plugins()
    configured = []
    for row in rows:
        plugin_class = installed.get(row["slug"])
        if plugin_class is None:  # uninstalled since it was enabled: skip, don't crash the shop
            continue
        config = new_row(PluginConfig, **{k: v for k, v in row.items() if k != "accounts"}, enabled=True)
        config.cached_accounts = tuple(new_row(PluginAccount, **account) for account in row["accounts"])
        configured.append((plugin_class, config))
    return tuple(configured)


def _check(hook: str) -> None:
    if hook not in HOOKS:
        raise UnknownHook(f"{hook!r} is not a Kameng hook point; known: {', '.join(sorted(HOOKS))}")


def collect(hook: str, /, **kwargs) -> list[Any]:
    _check(hook)
    answers = []
    for plugin in enabled_plugins():
        method = getattr(plugin, hook, None)
        if method is None:
            continue
        answer = method(**kwargs)
        if answer is not None:
            answers.append(answer)
    return answers


def pipeline(hook: str, value, /, **kwargs):
    _check(hook)
    for plugin in enabled_plugins():
        method = getattr(plugin, hook, None)
        if method is not None:
            value = method(value, **kwargs)
    return value
