"""Shop console: the merchant accounts of a payment plugin (list, add, edit, reorder,
disable, remove). Thin: the writes are ``plugins.accounts`` services, which audit."""
from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path
from django.views.decorators.http import require_POST

from platform_core.console_views import _render, _require_manage
from platform_core.admin_sites import can_manage
from plugins import accounts as account_services
from plugins.base import MAIN_ACCOUNT
from plugins.models import PluginConfig
from plugins.payment import PaymentPlugin
from plugins.registry import UnknownPlugin, get_plugin_class
from plugins.services import PluginError, plugin_test_connection


def _payment_plugin(slug: str, request):
    # owner and admins only, reads too: merchant ids are the shop's business relationships
    _require_manage(request)
    try:
        plugin_class = get_plugin_class(slug)
    except UnknownPlugin:
        raise Http404("No such plugin.") from None
    if not issubclass(plugin_class, PaymentPlugin) or not plugin_class.multiple_accounts:
        raise Http404("This plugin has no merchant accounts.")
    return plugin_class


def _hook_path(slug: str, key: str) -> str:
    return f"/hooks/payments/{slug}/" + ("" if key == MAIN_ACCOUNT else f"{key}/")


def plugin_accounts_view(request, slug):
    plugin_class = _payment_plugin(slug, request)
    config = PluginConfig.objects.filter(slug=slug).first()
    rows = [{"account": account, "hook_path": _hook_path(slug, account.key),
             "configured": account_services.account_is_configured(plugin_class, config, account)}
            for account in account_services.plugin_accounts(config=config)]
    return _render(request, "kameng/manage/plugin_accounts.html", f"{plugin_class.name}: merchant accounts",
                   plugin=plugin_class, slug=slug, rows=rows, config=config, can_manage=can_manage(request))


def plugin_account_edit_view(request, slug, key=None):
    plugin_class = _payment_plugin(slug, request)
    config = PluginConfig.objects.filter(slug=slug).first()
    account = account_services.plugin_account(config=config, key=key) if key else None
    if key and account is None:
        raise Http404("No such account.")
    form = account_services.account_settings_form(plugin_class, config, account or _blank_account())
    meta = {"label": account.label if account else "", "key": account.key if account else "",
            "priority": account.priority if account else "", "enabled": account.enabled if account else True}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        _require_manage(request)
        data = request.POST.dict()
        meta = {"label": data.pop("account_label", ""), "key": key or data.pop("account_key", ""),
                "priority": data.pop("account_priority", ""), "enabled": data.pop("account_enabled", "") == "on"}
        try:
            priority = int(meta["priority"]) if str(meta["priority"]).strip() else None
        except ValueError:
            errors["priority"] = ["Priority is a whole number from 0 (tried first) to 1000."]
            priority = None
        if not errors:
            try:
                account_services.plugin_account_save(
                    shop=request.tenant, slug=slug, key=meta["key"], label=meta["label"], data=data,
                    priority=priority, enabled=meta["enabled"], create=key is None, actor=request.user,
                    request=request)
            except PluginError as exc:
                messages.error(request, exc.message)
                errors = exc.errors
            else:
                messages.success(request, f"Account {meta['label']} saved.")
                return redirect("manage:plugin_accounts", slug=slug)
        form = account_services.account_settings_form(plugin_class, config, account or _blank_account(),
                                                      data=request.POST)
        if form is not None:
            form.is_valid()
    return _render(request, "kameng/manage/plugin_account_edit.html",
                   f"{plugin_class.name}: {account.label if account else 'new merchant account'}",
                   plugin=plugin_class, slug=slug, account=account, form=form, meta=meta, errors=errors,
                   stored_secrets=account_services.stored_secret_fields(config, account) if account else [],
                   can_test_connection=getattr(plugin_class, "supports_test_connection", False),
                   can_manage=can_manage(request))


def _blank_account():
    from plugins.models import PluginAccount

    return PluginAccount(key="new", label="")


@require_POST
def plugin_account_move_view(request, slug, key):
    _payment_plugin(slug, request)
    config = PluginConfig.objects.filter(slug=slug).first()
    keys = [account.key for account in account_services.plugin_accounts(config=config)]
    if key not in keys:
        raise Http404("No such account.")
    index = keys.index(key)
    target = index - 1 if request.POST.get("direction") == "up" else index + 1
    if 0 <= target < len(keys):
        keys[index], keys[target] = keys[target], keys[index]
        try:
            account_services.plugin_accounts_reorder(shop=request.tenant, slug=slug, keys=keys, actor=request.user,
                                                     request=request)
        except PluginError as exc:
            messages.error(request, exc.message)
    return redirect("manage:plugin_accounts", slug=slug)


@require_POST
def plugin_account_delete_view(request, slug, key):
    _payment_plugin(slug, request)
    try:
        account_services.plugin_account_delete(shop=request.tenant, slug=slug, key=key, actor=request.user,
                                               request=request)
    except PluginError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Account removed.")
    return redirect("manage:plugin_accounts", slug=slug)


@require_POST
def plugin_account_test_view(request, slug, key):
    _payment_plugin(slug, request)
    try:
        messages.success(request, plugin_test_connection(shop=request.tenant, slug=slug, account=key,
                                                         actor=request.user, request=request))
    except PluginError as exc:
        messages.error(request, exc.message)
    return redirect("manage:plugin_account_edit", slug=slug, key=key)


def account_console_urls(admin_view) -> list:
    return [
        path("plugins/<slug:slug>/accounts/", admin_view(plugin_accounts_view), name="plugin_accounts"),
        path("plugins/<slug:slug>/accounts/new/", admin_view(plugin_account_edit_view), name="plugin_account_new"),
        path("plugins/<slug:slug>/accounts/<slug:key>/", admin_view(plugin_account_edit_view),
             name="plugin_account_edit"),
        path("plugins/<slug:slug>/accounts/<slug:key>/move/", admin_view(plugin_account_move_view),
             name="plugin_account_move"),
        path("plugins/<slug:slug>/accounts/<slug:key>/delete/", admin_view(plugin_account_delete_view),
             name="plugin_account_delete"),
        path("plugins/<slug:slug>/accounts/<slug:key>/test/", admin_view(plugin_account_test_view),
             name="plugin_account_test"),
    ]
