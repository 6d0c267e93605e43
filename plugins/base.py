"""What a plugin is. Subclass :class:`Plugin`, point a :class:`PluginAppConfig` at it,
and list the app in ``KAMENG_BUILTIN_PLUGINS`` or publish it under the
``kameng.plugins`` entry-point group. See docs/plugins.md."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.apps import AppConfig
from django.db import models
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from plugins.models import PluginConfig
    from tenants.models import Shop


class PluginKind(models.TextChoices):
    PAYMENT = "payment", _("Payments")
    MARKETING = "marketing", _("Marketing")
    DISTRIBUTION = "distribution", _("Distribution")
    SUPPLIER = "supplier", _("Supply chain")


class Plugin:
    """One plugin, bound to one shop and that shop's configuration.

    Hook points are plain methods named after the hook (see :mod:`plugins.hooks`);
    the dispatcher only calls them on plugins the current shop has enabled.
    """

    slug: str = ""
    name: str = ""
    kind: str = PluginKind.MARKETING
    version: str = "1.0"
    description: str = ""
    author: str = "Kameng"
    #: a ``django.forms.Form`` subclass describing the settings; validation lives in it
    settings_form: type[forms.Form] | None = None
    #: fields of ``settings_form`` that are stored encrypted and never shown again
    secret_fields: tuple[str, ...] = ()
    #: plan feature the shop needs to enable this plugin (None: every plan)
    required_feature: str | None = None

    def __init__(self, shop: Shop, config: PluginConfig | None = None):
        self.shop = shop
        self.config = config

    # --- availability --------------------------------------------------------
    @classmethod
    def unavailable_reason(cls, shop: Shop) -> str | None:
        """Why ``shop`` may not enable this plugin, or None if it may."""
        from tenants.features import feature_refusal

        # a plan unlocks a whole kind ("plugins.payment") or one plugin ("plugin.<slug>")
        feature = cls.required_feature or f"plugins.{cls.kind}"
        return feature_refusal(shop, (feature, f"plugin.{cls.slug}"), f"{cls.kind} plugins such as {cls.name}")

    # --- settings ------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.config.settings) if self.config else {}

    def secret(self, field: str) -> str | None:
        """The decrypted value of a secret settings field (None when unset)."""
        from platform_core import crypto

        token = (self.config.secrets or {}).get(field) if self.config else None
        if not token:
            return None
        return crypto.decrypt_str(self.shop, token, context=secret_context(self.slug, field))


def secret_context(slug: str, field: str) -> str:
    return f"plugin:{slug}:{field}"


class PluginAppConfig(AppConfig):
    """AppConfig of a plugin app; ``plugin`` is the dotted path of its Plugin class."""

    plugin: str = ""

    def get_plugin_class(self) -> type[Plugin]:
        return import_string(self.plugin)
