"""Plugin framework: registry, per-shop enable/configure/disable, encrypted secrets,
hook dispatch only for shops that enabled the plugin."""
from __future__ import annotations

import sys

import pytest
from django.db import connection
from django.test import override_settings
from django_tenants.utils import tenant_context

from platform_core import crypto
from platform_core.audit.models import AuditEvent
from plugins import hooks, services
from plugins.models import PluginConfig
from plugins.registry import UnknownPlugin, installed_plugins
from tests.testplugins.dummy_gateway.plugin import DummyGatewayPlugin

GOOD = {"merchant_id": "M1234", "api_key": "sk_live_abcdef123", "discount": "100"}


def test_registry_finds_builtin_and_test_plugins():
    plugins = installed_plugins()
    assert plugins["store-notice"].kind == "marketing"
    assert plugins["dummy-gateway"].secret_fields == ("api_key",)


def test_configure_stores_secrets_encrypted_and_they_decrypt_only_in_their_shop(alpha, bravo, alice):
    with tenant_context(alpha):
        config = services.plugin_configure(shop=alpha, slug="dummy-gateway", data=GOOD, enable=True, actor=alice)
        with connection.cursor() as cursor:
            cursor.execute("SELECT settings::text, secrets::text FROM plugins_pluginconfig WHERE slug = %s",
                           ["dummy-gateway"])
            settings_text, secrets_text = cursor.fetchone()
        assert "sk_live_abcdef123" not in settings_text + secrets_text
        assert "api_key" not in settings_text and '"merchant_id": "M1234"' in settings_text
        token = config.secrets["api_key"]
        assert token.startswith("k1.1.")
        plugin = DummyGatewayPlugin(alpha, config)
        assert plugin.secret("api_key") == "sk_live_abcdef123"
        event = AuditEvent.objects.get(action="plugin.configured")
        assert event.actor_email == "alice@example.com" and "sk_live" not in str(event.data)
    # the same ciphertext is useless in another shop or another field
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(bravo, token, context="plugin:dummy-gateway:api_key")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(alpha, token, context="plugin:dummy-gateway:merchant_id")


def test_secret_is_kept_when_the_field_is_left_blank(alpha):
    with tenant_context(alpha):
        first = services.plugin_configure(shop=alpha, slug="dummy-gateway", data=GOOD)
        second = services.plugin_configure(shop=alpha, slug="dummy-gateway",
                                           data={**GOOD, "api_key": "", "merchant_id": "M9999"})
        assert second.secrets["api_key"] == first.secrets["api_key"]
        assert second.settings["merchant_id"] == "M9999"


@pytest.mark.parametrize("data, field", [
    ({**GOOD, "merchant_id": "1234"}, "merchant_id"),
    ({**GOOD, "api_key": "short"}, "api_key"),
    ({**GOOD, "discount": "-5"}, "discount"),
    ({"merchant_id": "M1234"}, "api_key"),
])
def test_invalid_settings_are_refused_with_field_errors_and_nothing_saved(alpha, data, field):
    with tenant_context(alpha):
        with pytest.raises(services.PluginError) as error:
            services.plugin_configure(shop=alpha, slug="dummy-gateway", data=data, enable=True)
        assert field in error.value.errors
        assert not PluginConfig.objects.filter(slug="dummy-gateway", enabled=True).exists()


def test_enable_before_configuring_is_refused(alpha):
    with tenant_context(alpha):
        with pytest.raises(services.PluginError, match="Configure Dummy gateway before enabling it"):
            services.plugin_enable(shop=alpha, slug="dummy-gateway")


def test_unknown_plugin(alpha):
    with tenant_context(alpha), pytest.raises(UnknownPlugin):
        services.plugin_enable(shop=alpha, slug="no-such-plugin")


def test_plugin_enabled_in_a_never_runs_in_b(alpha, bravo):
    DummyGatewayPlugin.calls.clear()
    with tenant_context(alpha):
        services.plugin_configure(shop=alpha, slug="dummy-gateway", data=GOOD, enable=True)
        hooks.forget_enabled_cache()
        assert hooks.pipeline("price_adjust", 1000, product=None) == 900
    with tenant_context(bravo):
        hooks.forget_enabled_cache()
        assert hooks.pipeline("price_adjust", 1000, product=None) == 1000
    assert DummyGatewayPlugin.calls == ["alpha"]
    # and nothing runs on the platform (public) schema
    assert hooks.pipeline("price_adjust", 1000) == 1000


def test_disable_stops_the_hook(alpha):
    with tenant_context(alpha):
        services.plugin_configure(shop=alpha, slug="dummy-gateway", data=GOOD, enable=True)
        hooks.forget_enabled_cache()
        assert hooks.pipeline("price_adjust", 500) == 400
        services.plugin_disable(shop=alpha, slug="dummy-gateway")
        hooks.forget_enabled_cache()
        assert hooks.pipeline("price_adjust", 500) == 500
        assert list(AuditEvent.objects.filter(action__startswith="plugin.").values_list("action", flat=True).order_by("id")) == [
            "plugin.configured", "plugin.disabled"]


def test_a_process_builds_the_enabled_configurations_once_per_cached_value_and_plan_checks_every_request(alpha):
    """Decision 0052: requests share the configurations built from the same cached rows
    (each gets its own plugin instances, for its own shop object); a change of the rows
    builds them anew, and a plan that no longer includes the plugin hides it at once."""
    from billing.limits import forget_plan_cache
    from billing.models import Plan, Subscription
    from platform_core.cache import request_scope

    def one_request():
        with request_scope():
            return hooks.enabled_plugins(alpha)

    with tenant_context(alpha):
        services.plugin_configure(shop=alpha, slug="dummy-gateway", data=GOOD, enable=True)
        one_request()  # reads the rows from the database and caches them
        first, second = one_request(), one_request()
        assert [type(p) for p in first] == [DummyGatewayPlugin]
        assert first[0] is not second[0] and first[0].config is second[0].config
        assert first[0].settings["discount"] == 100
        services.plugin_configure(shop=alpha, slug="dummy-gateway", data={**GOOD, "discount": 7})
        one_request()
        changed = one_request()
        assert changed[0].config is not first[0].config and changed[0].settings["discount"] == 7
        assert hooks.pipeline("price_adjust", 100) == 93
    plan = Plan.objects.create(code="marketing-only", name="Marketing only", monthly_fee=0,
                               features=["plugins.marketing"])
    Subscription.objects.filter(shop=alpha).update(plan=plan)
    forget_plan_cache(alpha)
    with tenant_context(alpha):
        assert one_request() == []  # the same cached rows, a plan without payment plugins


def test_unknown_hook_name_is_a_loud_error(alpha):
    with tenant_context(alpha), pytest.raises(hooks.UnknownHook):
        hooks.collect("no_such_hook")


def test_plan_without_the_feature_cannot_enable_and_hooks_skip_it(alpha):
    from billing.limits import forget_plan_cache
    from billing.models import Plan, Subscription

    plan = Plan.objects.create(code="marketing-only", name="Marketing only", monthly_fee=0,
                               features=["plugins.marketing"])
    Subscription.objects.filter(shop=alpha).update(plan=plan)
    forget_plan_cache(alpha)
    with tenant_context(alpha):
        with pytest.raises(services.PluginError, match="plan does not include payment"):
            services.plugin_configure(shop=alpha, slug="dummy-gateway", data=GOOD, enable=True)
        PluginConfig.objects.create(slug="dummy-gateway", enabled=True, settings={"discount": 1})
        hooks.forget_enabled_cache()
        assert hooks.pipeline("price_adjust", 10) == 10


def test_storefront_banner_end_to_end(shop_client, alpha, bravo, alice):
    client = shop_client(alpha, alice)
    response = client.post("/manage/plugins/store-notice/", {"message": "", "style": "info", "enabled": "on"})
    assert response.status_code == 200 and b"This field is required" in response.content
    response = client.post("/manage/plugins/store-notice/",
                           {"message": "Open 24/7 — 全天营业", "style": "warning", "enabled": "on"})
    assert response.status_code == 302
    page = shop_client(alpha).get("/")
    assert "Open 24/7 — 全天营业" in page.content.decode()
    assert b'notice-warning' in page.content
    assert "Open 24/7" not in shop_client(bravo).get("/").content.decode()
    # disable from the plugin list
    client.post("/manage/plugins/store-notice/toggle/", {"enable": "0"})
    assert "Open 24/7" not in shop_client(alpha).get("/").content.decode()


def test_staff_role_can_view_but_not_change_plugins(shop_client, alpha, bob, db):
    from tenants.models import ShopMembership

    ShopMembership.objects.create(shop=alpha, merchant=bob, role="staff")
    client = shop_client(alpha, bob)
    assert client.get("/manage/plugins/").status_code == 200
    assert client.post("/manage/plugins/store-notice/", {"message": "x", "style": "info"}).status_code == 403
    assert client.post("/manage/plugins/store-notice/toggle/", {"enable": "1"}).status_code == 403


def test_plugin_api(shop_client, alpha, alice):
    client = shop_client(alpha, alice)
    listing = client.get("/api/v1/plugins/").json()
    assert {p["slug"] for p in listing} >= {"store-notice", "dummy-gateway"}
    bad = client.patch("/api/v1/plugins/dummy-gateway/", {"enabled": True, "settings": {"merchant_id": "x"}},
                       content_type="application/json")
    assert bad.status_code == 400 and "merchant_id" in bad.json()["errors"]
    good = client.patch("/api/v1/plugins/dummy-gateway/", {"enabled": True, "settings": GOOD},
                        content_type="application/json")
    assert good.status_code == 200 and good.json()["enabled"] is True
    assert "api_key" not in str(good.json())
    assert client.patch("/api/v1/plugins/nope/", {"enabled": True}, content_type="application/json").status_code == 404


def test_third_party_plugins_are_found_through_the_entry_point_group(tmp_path, monkeypatch):
    from platform_core.plugin_discovery import discover_plugin_apps

    dist = tmp_path / "kameng_extra-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kameng-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[kameng.plugins]\nextra = kameng_extra_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = discover_plugin_apps(["plugins.marketing.store_notice"])
    assert found == ["plugins.marketing.store_notice", "kameng_extra_plugin"]
    assert discover_plugin_apps(["plugins.marketing.store_notice"], exclude=["kameng_extra_plugin"]) == [
        "plugins.marketing.store_notice"]
    assert "kameng_extra_plugin" not in sys.modules  # discovery never imports plugin code
