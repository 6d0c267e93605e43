"""Writes to per-shop plugin configuration: enable, configure, disable (audited)."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from platform_core import crypto
from platform_core.audit.services import audit_record
from platform_core.cache import forget_now_and_on_commit
from plugins.base import MAIN_ACCOUNT, secret_context
from plugins.hooks import forget_enabled_cache
from plugins.models import PluginConfig
from plugins.registry import get_plugin_class


class PluginError(Exception):
    """A plugin change was refused; ``errors`` maps form fields to messages."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


def _forget_now_and_on_commit() -> None:
    forget_now_and_on_commit(forget_enabled_cache)


def _locked_config(slug: str) -> PluginConfig:
    config, _ = PluginConfig.objects.select_for_update().get_or_create(slug=slug)
    return config


def settings_form_for(plugin_class, config: PluginConfig | None, data=None):
    if plugin_class.settings_form is None:
        return None
    initial = dict(config.settings) if config else {}
    form = plugin_class.settings_form(data=data, initial=initial)
    for field in plugin_class.secret_fields:
        if field in form.fields and config and (config.secrets or {}).get(field):
            # a stored secret is never shown; leaving the field blank keeps it
            form.fields[field].required = False
            form.fields[field].help_text = "Stored encrypted. Leave blank to keep the current value."
    return form


def _validate(plugin_class, config: PluginConfig, data: dict) -> tuple[dict, dict]:
    """Validate ``data`` with the plugin's form; returns (settings, new secret values)."""
    form = settings_form_for(plugin_class, config, data=data)
    if form is None:
        return {}, {}
    if not form.is_valid():
        raise PluginError(
            f"The settings of {plugin_class.name} are not valid.",
            {field: [str(e) for e in errors] for field, errors in form.errors.items()},
        )
    cleaned = dict(form.cleaned_data)
    secrets = {field: cleaned.pop(field) for field in plugin_class.secret_fields if field in cleaned}
    secrets = {field: value for field, value in secrets.items() if value not in (None, "")}
    return _jsonable(cleaned), secrets


def _jsonable(values: dict) -> dict:
    out = {}
    for key, value in values.items():
        out[key] = value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else str(value)
    return out


def _refuse_if_unavailable(plugin_class, shop) -> None:
    reason = plugin_class.unavailable_reason(shop)
    if reason:
        raise PluginError(str(reason))


def plugin_configure(*, shop, slug: str, data: dict, enable: bool | None = None, actor=None, request=None) -> PluginConfig:
    """Validate and store settings (secrets encrypted); optionally enable or disable."""
    plugin_class = get_plugin_class(slug)
    with transaction.atomic():
        config = _locked_config(slug)
        settings, secrets = _validate(plugin_class, config, data)
        if enable or (enable is None and config.enabled):
            _refuse_if_unavailable(plugin_class, shop)
        config.settings = settings
        config.secrets = {
            **(config.secrets or {}),
            **{field: crypto.encrypt(shop, value, context=secret_context(slug, field)) for field, value in secrets.items()},
        }
        if enable is not None:
            config.enabled = enable
        config.plugin_version = plugin_class.version
        config.updated_at = timezone.now()
        config.updated_by_email = getattr(actor, "email", "") or ""
        config.save()
        audit_record(
            action="plugin.configured", actor=actor, request=request, target=config,
            data={"slug": slug, "enabled": config.enabled, "fields": sorted(settings),
                  "secrets_changed": sorted(secrets)},
        )
        _forget_now_and_on_commit()
    return config


def plugin_enable(*, shop, slug: str, actor=None, request=None) -> PluginConfig:
    """Enable with the stored settings; refused if they do not validate yet."""
    plugin_class = get_plugin_class(slug)
    _refuse_if_unavailable(plugin_class, shop)
    with transaction.atomic():
        config = _locked_config(slug)
        if plugin_class.settings_form is not None:
            try:
                _validate(plugin_class, config, dict(config.settings))
            except PluginError as exc:
                raise PluginError(f"Configure {plugin_class.name} before enabling it.", exc.errors) from None
        config.enabled = True
        config.plugin_version = plugin_class.version
        config.updated_at = timezone.now()
        config.updated_by_email = getattr(actor, "email", "") or ""
        config.save()
        audit_record(action="plugin.enabled", actor=actor, request=request, target=config, data={"slug": slug})
        _forget_now_and_on_commit()
    return config


def plugin_disable(*, shop, slug: str, actor=None, request=None) -> PluginConfig:
    get_plugin_class(slug)
    with transaction.atomic():
        config = _locked_config(slug)
        config.enabled = False
        config.updated_at = timezone.now()
        config.updated_by_email = getattr(actor, "email", "") or ""
        config.save()
        audit_record(action="plugin.disabled", actor=actor, request=request, target=config, data={"slug": slug})
        _forget_now_and_on_commit()
    return config


def plugin_test_connection(*, shop, slug: str, account: str = MAIN_ACCOUNT, actor=None, request=None) -> str:
    """Let a plugin call its service with the stored credentials (payment gateways:
    ``test_connection()``) of one merchant account (the main one unless named).
    Returns its plain-words answer; a failure is a PluginError."""
    from plugins.payment import PaymentError

    plugin_class = get_plugin_class(slug)
    if not getattr(plugin_class, "supports_test_connection", False):
        raise PluginError(f"{plugin_class.name} offers no connection test.")
    config = PluginConfig.objects.filter(slug=slug).first()
    plugin, stored = plugin_class(shop, config), (config.secrets if config else None)
    if account != MAIN_ACCOUNT:
        from plugins.accounts import plugin_account

        row = plugin_account(config=config, key=account)
        if row is None:
            raise PluginError(f"There is no account {account!r}.")
        plugin, stored = plugin.for_account(row), row.secrets
    if config is None or not stored:
        raise PluginError(f"Save the settings of {plugin_class.name} first, then test the connection.")
    try:
        message, ok = plugin.test_connection(), True
    except PaymentError as exc:
        message, ok = exc.message, False
    data = {"slug": slug, "ok": ok} if account == MAIN_ACCOUNT else {"slug": slug, "account": account, "ok": ok}
    audit_record(action="plugin.connection_tested", actor=actor, request=request, target=config, data=data)
    if not ok:
        raise PluginError(message)
    return message
