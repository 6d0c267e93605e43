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
    from plugins.models import PluginAccount, PluginConfig
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

    #: templates get the class (its name, description …), never an instance they made up
    do_not_call_in_templates = True
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

    def __init__(self, shop: Shop, config: PluginConfig | None = None, account: PluginAccount | None = None):
        self.shop = shop
        self.config = config
        #: the merchant account this instance speaks for; None or ``main``: the config itself
        self.account = account

    @property
    def account_key(self) -> str:
        return self.account.key if self.account is not None else MAIN_ACCOUNT

    def for_account(self, account: PluginAccount) -> Plugin:
        """This plugin bound to ``account``: its settings and secrets, nobody else's."""
        return type(self)(self.shop, self.config, account)

    def _own_account(self) -> bool:
        return self.account is not None and self.account.key != MAIN_ACCOUNT

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
        if self._own_account():
            return dict(self.account.settings)
        return dict(self.config.settings) if self.config else {}

    def secret(self, field: str) -> str | None:
        """The decrypted value of a secret settings field (None when unset)."""
        from platform_core import crypto

        if self._own_account():
            token = (self.account.secrets or {}).get(field)
            context = secret_context(self.slug, field, account=self.account.key)
        else:
            token = (self.config.secrets or {}).get(field) if self.config else None
            context = secret_context(self.slug, field)
        if not token:
            return None
        return crypto.decrypt_setting(self.shop, token, context=context)


#: the account a plugin configuration is by itself (see plugins.models.PluginAccount)
MAIN_ACCOUNT = "main"


def secret_context(slug: str, field: str, account: str = MAIN_ACCOUNT) -> str:
    # bound to the account too, so one account's ciphertext cannot be pasted into another's
    if account == MAIN_ACCOUNT:
        return f"plugin:{slug}:{field}"
    return f"plugin:{slug}:account:{account}:{field}"


class PluginAppConfig(AppConfig):
    """AppConfig of a plugin app; ``plugin`` is the dotted path of its Plugin class."""

    plugin: str = ""

    def get_plugin_class(self) -> type[Plugin]:
        return import_string(self.plugin)
