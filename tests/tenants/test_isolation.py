"""Tenant isolation: nothing of one shop is visible or changeable from another."""
from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from plugins.models import PluginConfig
from platform_core.audit.models import AuditEvent

SHOP_CONSOLE_URLS = [
    "/manage/",
    "/manage/plugins/",
    "/manage/plugins/store-notice/",
    "/manage/settings/",
    "/manage/domains/",
    "/manage/team/",
    "/manage/api-token/",
    "/manage/audit/auditevent/",
]
SHOP_API_URLS = ["/api/v1/shop/", "/api/v1/plugins/", "/api/v1/plugins/store-notice/"]


@pytest.mark.parametrize("url", SHOP_CONSOLE_URLS)
def test_member_of_a_is_kept_out_of_every_console_page_of_b(shop_client, alpha, bravo, alice, url):
    own = shop_client(alpha, alice).get(url)
    assert own.status_code == 200, url
    other = shop_client(bravo, alice).get(url)
    # the admin sends non-members to its login page; nothing of B is rendered
    assert other.status_code == 302 and "/manage/login/" in other["Location"]


@pytest.mark.parametrize("url", SHOP_CONSOLE_URLS)
def test_member_of_a_cannot_post_to_b(shop_client, bravo, alice, url):
    response = shop_client(bravo, alice).post(url, {"message": "hijack", "enabled": "on", "domain": "evil.example.com"})
    assert response.status_code in (302, 403)
    with tenant_context(bravo):
        assert not PluginConfig.objects.filter(settings__message="hijack").exists()


@pytest.mark.parametrize("url", SHOP_API_URLS)
def test_api_of_b_refuses_a_member_of_a(shop_client, alpha, bravo, alice, url):
    assert shop_client(alpha, alice).get(url).status_code == 200
    response = shop_client(bravo, alice).get(url)
    assert response.status_code == 403
    assert "not a member" in response.json()["detail"] or "owner" in response.json()["detail"]


def test_api_token_of_a_member_of_a_is_useless_on_b(db, alpha, bravo, alice):
    from django.test import Client
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=alice)
    client = Client(HTTP_HOST="bravo.kameng.test", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/v1/plugins/").status_code == 403
    response = client.patch("/api/v1/plugins/store-notice/", {"enabled": True, "settings": {"message": "hijack"}},
                            content_type="application/json")
    assert response.status_code == 403
    with tenant_context(bravo):
        assert not PluginConfig.objects.filter(slug="store-notice").exists()


def test_data_created_in_a_is_invisible_from_b(alpha, bravo):
    with tenant_context(alpha):
        PluginConfig.objects.create(slug="only-in-alpha", settings={"secret": "a"})
        AuditEvent.objects.create(action="alpha.private")
        assert connection.schema_name == "shop_alpha"
    with tenant_context(bravo):
        assert not PluginConfig.objects.filter(slug="only-in-alpha").exists()
        assert not AuditEvent.objects.filter(action="alpha.private").exists()
    assert not AuditEvent.objects.filter(action="alpha.private").exists()  # not in public either


def test_unknown_host_gets_a_clean_404(db):
    from django.test import Client

    response = Client(HTTP_HOST="nosuchshop.kameng.test").get("/")
    assert response.status_code == 404
    assert b"There is no shop at nosuchshop.kameng.test" in response.content
    assert Client(HTTP_HOST="evil.example.org").get("/manage/").status_code == 404


def test_after_a_shops_request_the_next_host_is_served_in_its_own_schema(db, alpha, bravo, settings):
    """Routing switches straight from the last request's shop to the next one; an unknown
    host and a host Django refuses are answered in public."""
    from django.test import Client

    for host, name in (("alpha.kameng.test", b"Alpha Shop"), ("bravo.kameng.test", b"Bravo Shop"),
                       ("alpha.kameng.test", b"Alpha Shop")):
        response = Client(HTTP_HOST=host).get("/")
        assert response.status_code == 200 and name in response.content
    assert connection.schema_name == "shop_alpha"  # as the next request finds the connection
    assert Client(HTTP_HOST="nosuchshop.kameng.test").get("/").status_code == 404
    assert connection.schema_name == "public"
    assert b"Bravo Shop" in Client(HTTP_HOST="bravo.kameng.test").get("/").content
    settings.ALLOWED_HOSTS = ["kameng.test", ".kameng.test"]
    assert Client(HTTP_HOST="evil.example.org").get("/").status_code == 400
    assert connection.schema_name == "public"


def test_a_cache_that_fails_during_routing_leaves_the_connection_in_public(db, alpha, monkeypatch):
    from django.core.cache import caches
    from django.test import Client

    assert Client(HTTP_HOST="alpha.kameng.test").get("/").status_code == 200
    assert connection.schema_name == "shop_alpha"

    def down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(type(caches["default"]), "prefetch_made", down)
    with pytest.raises(ConnectionError):
        Client(HTTP_HOST="alpha.kameng.test").get("/")
    assert connection.schema_name == "public"


def test_template_and_spare_schemas_never_route(db):
    from django.test import Client

    from tenants.models import Domain, Shop

    spare = Shop.objects.filter(status=Shop.Status.SPARE).first()
    Domain.objects.create(tenant=spare, domain="spare.kameng.test", verified_at="2026-01-01T00:00Z")
    assert Client(HTTP_HOST="spare.kameng.test").get("/").status_code == 404


def test_session_cookie_replayed_on_another_shop_host_is_dropped(shop_client, alpha, bravo, alice, bob):
    from tenants.models import ShopMembership

    ShopMembership.objects.create(shop=bravo, merchant=alice, role="staff")
    client = shop_client(alpha, alice)
    assert client.get("/manage/").status_code == 200  # binds the session to alpha's host
    client.defaults["HTTP_HOST"] = "bravo.kameng.test"  # same cookie, other host
    response = client.get("/manage/")
    assert response.status_code == 302 and "/manage/login/" in response["Location"]


def test_platform_console_is_for_platform_staff_only(platform_client, alice, db):
    platform_client.force_login(alice)
    assert platform_client.get("/console/").status_code == 302
    alice.is_staff = True
    alice.save()
    assert platform_client.get("/console/").status_code == 200
    assert platform_client.get("/console/tenants/shop/").status_code == 200


def test_platform_console_is_not_served_on_shop_hosts(shop_client, alpha, alice):
    alice.is_staff = True
    alice.save()
    assert shop_client(alpha, alice).get("/console/").status_code == 404
