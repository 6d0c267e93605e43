"""Several merchant accounts per payment plugin: reads and audited writes.

The ``main`` account is the plugin configuration itself (its settings and secrets stay
in ``PluginConfig``); other accounts keep theirs in ``PluginAccount`` rows, validated
by the plugin's own settings form and encrypted per account. See docs/payments.md
("Several merchant accounts") and docs/decisions/0028.
"""
from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.utils import timezone

from platform_core import crypto
from platform_core.audit.services import audit_record
from platform_core.db.rows import new_row
from plugins.base import MAIN_ACCOUNT, secret_context
from plugins.models import PluginAccount, PluginConfig
from plugins.registry import get_plugin_class
from plugins.services import PluginError, _forget_now_and_on_commit, _jsonable, _locked_config

MAIN_LABEL = "Main account"
MAX_ACCOUNTS = 10
#: words the console's own URLs use under .../accounts/
RESERVED_KEYS = frozenset({"new", "reorder", MAIN_ACCOUNT})
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


# --- reads -----------------------------------------------------------------------------

def _implicit_main(config: PluginConfig) -> PluginAccount:
    # a configuration nobody has split into accounts yet is its main account
    return new_row(PluginAccount, config=config, key=MAIN_ACCOUNT, label=MAIN_LABEL, priority=0, enabled=True)


def plugin_accounts(*, config: PluginConfig | None) -> list[PluginAccount]:
    """Every account of ``config``, in the order payments try them (disabled ones too)."""
    if config is None or config.pk is None:
        return []
    cached = getattr(config, "cached_accounts", None)  # read with the enabled configuration (plugins.hooks)
    if cached is not None and "sorted_accounts" in config.__dict__:  # that snapshot, sorted once
        return list(config.__dict__["sorted_accounts"])
    rows = list(cached) if cached is not None else list(PluginAccount.objects.filter(config_id=config.pk))
    if not any(row.key == MAIN_ACCOUNT for row in rows):
        rows.append(_implicit_main(config))
    # main first among equals: an old single-account shop keeps its order
    rows.sort(key=lambda a: (a.priority, a.key != MAIN_ACCOUNT, a.pk or 0))
    if cached is not None:
        config.__dict__["sorted_accounts"] = tuple(rows)
    return rows


def plugin_account(*, config: PluginConfig | None, key: str) -> PluginAccount | None:
    return next((a for a in plugin_accounts(config=config) if a.key == key), None)


def account_is_configured(plugin_class, config: PluginConfig, account: PluginAccount) -> bool:
    if account.key == MAIN_ACCOUNT:
        return bool(config.settings or config.secrets)
    return bool(account.settings or account.secrets)


def stored_secret_fields(config: PluginConfig | None, account: PluginAccount | None) -> list[str]:
    """Names (never values) of the secrets an account has stored."""
    if config is None:
        return []
    secrets = config.secrets if account is None or account.key == MAIN_ACCOUNT else account.secrets
    return sorted((secrets or {}).keys())


def account_settings_form(plugin_class, config: PluginConfig | None, account: PluginAccount | None, data=None):
    """The plugin's own settings form for one account (blank secret = keep the stored one)."""
    if plugin_class.settings_form is None:
        return None
    if account is None or account.key == MAIN_ACCOUNT:
        from plugins.services import settings_form_for

        return settings_form_for(plugin_class, config, data=data)
    form = plugin_class.settings_form(data=data, initial=dict(account.settings))
    for field in plugin_class.secret_fields:
        if field in form.fields and (account.secrets or {}).get(field):
            form.fields[field].required = False
            form.fields[field].help_text = "Stored encrypted. Leave blank to keep the current value."
    return form


# --- writes ----------------------------------------------------------------------------

def _payment_plugin_class(slug: str):
    from plugins.payment import PaymentPlugin

    plugin_class = get_plugin_class(slug)
    if not issubclass(plugin_class, PaymentPlugin) or not plugin_class.multiple_accounts:
        raise PluginError(f"{plugin_class.name} has one account only.")
    return plugin_class


def _locked_accounts(config: PluginConfig) -> list[PluginAccount]:
    """The accounts under a row lock, the main one stored as a row from now on."""
    rows = list(PluginAccount.objects.select_for_update().filter(config=config))
    if not any(row.key == MAIN_ACCOUNT for row in rows):
        main = _implicit_main(config)
        main.save()
        rows.append(main)
    return rows


def _audit(action: str, *, config, account: PluginAccount, actor, request, **data) -> None:
    audit_record(action=action, actor=actor, request=request, target=config,
                 data={"slug": config.slug, "account": account.key, "label": account.label, **data})


def _touch(config: PluginConfig, actor) -> None:
    config.updated_at = timezone.now()
    config.updated_by_email = getattr(actor, "email", "") or ""
    config.save(update_fields=["updated_at", "updated_by_email"])
    _forget_now_and_on_commit()  # the accounts are cached with the enabled configuration


def plugin_account_save(*, shop, slug: str, key: str, label: str, data: dict | None = None,
                        priority: int | None = None, enabled: bool | None = None, create: bool = False,
                        actor=None, request=None) -> PluginAccount:
    """Add (``create=True``) or edit one merchant account of a payment plugin.

    ``data`` is what the plugin's settings form takes (secrets left blank keep the stored
    ones); None leaves the settings as they are. Nothing is written unless all of it is
    valid. The main account's settings are the configuration's own."""
    plugin_class = _payment_plugin_class(slug)
    key, label = (key or "").strip().lower(), (label or "").strip()
    errors: dict[str, list[str]] = {}
    if not _KEY_RE.match(key) or (create and key in RESERVED_KEYS):
        errors["key"] = ["Use 1 to 40 lower-case letters, digits or dashes, starting with a letter or digit "
                         "(not \"new\", \"reorder\" or \"main\")."]
    if not label or len(label) > 80:
        errors["label"] = ["Give the account a name of 1 to 80 characters."]
    if priority is not None and not (0 <= priority <= 1000):
        errors["priority"] = ["Priority is a whole number from 0 (tried first) to 1000."]
    if errors:
        raise PluginError("The account is not valid.", errors)
    with transaction.atomic():
        config = _locked_config(slug)
        rows = {row.key: row for row in _locked_accounts(config)}
        account = rows.get(key)
        if create:
            if account is not None:
                raise PluginError("The account is not valid.", {"key": [f"There is already an account {key!r}."]})
            if len(rows) >= MAX_ACCOUNTS:
                raise PluginError(f"A payment method has at most {MAX_ACCOUNTS} merchant accounts.")
            account = PluginAccount(config=config, key=key,
                                    priority=max(row.priority for row in rows.values()) + 1)
        elif account is None:
            raise PluginError(f"There is no account {key!r}.")
        settings, secrets = {}, {}
        if data is not None:
            form = account_settings_form(plugin_class, config, account, data=data)
            if form is not None:
                if not form.is_valid():
                    raise PluginError(f"The settings of {plugin_class.name} are not valid.",
                                      {field: [str(e) for e in errs] for field, errs in form.errors.items()})
                cleaned = dict(form.cleaned_data)
                secrets = {f: cleaned.pop(f) for f in plugin_class.secret_fields if f in cleaned}
                secrets = {f: v for f, v in secrets.items() if v not in (None, "")}
                settings = _jsonable(cleaned)
        elif create and plugin_class.settings_form is not None:
            raise PluginError(f"Enter the settings of the new {plugin_class.name} account.")
        encrypted = {f: crypto.encrypt(shop, v, context=secret_context(slug, f, account=key))
                     for f, v in secrets.items()}
        if key == MAIN_ACCOUNT and data is not None:
            config.settings = settings
            config.secrets = {**(config.secrets or {}), **encrypted}
            config.plugin_version = plugin_class.version
        elif data is not None:
            account.settings = settings
            account.secrets = {**(account.secrets or {}), **encrypted}
        account.label = label
        if priority is not None:
            account.priority = priority
        if enabled is not None:
            account.enabled = enabled
        account.updated_at = timezone.now()
        try:
            with transaction.atomic():
                account.save()
        except IntegrityError:
            raise PluginError("The account is not valid.", {"key": [f"There is already an account {key!r}."]}) from None
        _touch(config, actor)
        if key == MAIN_ACCOUNT and data is not None:
            config.save(update_fields=["settings", "secrets", "plugin_version"])
        _audit("plugin.account_created" if create else "plugin.account_changed", config=config, account=account,
               actor=actor, request=request, enabled=account.enabled, priority=account.priority,
               fields=sorted(settings), secrets_changed=sorted(secrets))
        _forget_now_and_on_commit()
    return account


def plugin_accounts_reorder(*, shop, slug: str, keys: list[str], actor=None, request=None) -> list[PluginAccount]:
    """Try the accounts in the order of ``keys`` (every account named once)."""
    _payment_plugin_class(slug)
    with transaction.atomic():
        config = _locked_config(slug)
        rows = {row.key: row for row in _locked_accounts(config)}
        if sorted(keys) != sorted(rows) or len(set(keys)) != len(keys):
            raise PluginError("Name every account of this payment method exactly once.",
                              {"keys": [f"Expected: {', '.join(sorted(rows))}."]})
        for priority, key in enumerate(keys):
            row = rows[key]
            if row.priority != priority:
                row.priority, row.updated_at = priority, timezone.now()
                row.save(update_fields=["priority", "updated_at"])
        _touch(config, actor)
        audit_record(action="plugin.accounts_reordered", actor=actor, request=request, target=config,
                     data={"slug": slug, "order": list(keys)})
    return plugin_accounts(config=config)


def plugin_account_delete(*, shop, slug: str, key: str, actor=None, request=None) -> None:
    """Remove a backup account. Payments it took keep their record; their webhooks,
    refunds and polls then fail with a clear message, so disable an account rather
    than delete it while it has payments in flight."""
    from platform_core.payments.models import Payment

    _payment_plugin_class(slug)
    if key == MAIN_ACCOUNT:
        raise PluginError("The main account cannot be removed; disable it instead.")
    with transaction.atomic():
        config = _locked_config(slug)
        account = PluginAccount.objects.select_for_update().filter(config=config, key=key).first()
        if account is None:
            raise PluginError(f"There is no account {key!r}.")
        if Payment.objects.filter(provider=slug, account=key, status=Payment.Status.PENDING).exists():
            raise PluginError("This account has payments waiting for the gateway; disable it and remove it later.")
        _audit("plugin.account_removed", config=config, account=account, actor=actor, request=request)
        account.delete()
        _touch(config, actor)
