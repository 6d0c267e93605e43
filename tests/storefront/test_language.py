"""English and Simplified Chinese: the shop's default, the buyer's choice remembered."""
from __future__ import annotations

import pytest
from django.db import connection

from tests.storefront.conftest import token_of

pytestmark = pytest.mark.django_db


def test_shop_default_language(shop_client, alpha, catalog):
    html = shop_client(alpha).get("/").content.decode()  # alpha is an English shop
    assert "Find my order" in html and '<html lang="en">' in html
    alpha.language = "zh-hans"
    alpha.save(update_fields=["language"])
    from django.core.cache import cache

    cache.clear()  # the host → shop route is cached
    connection.set_schema_to_public()
    html = shop_client(alpha).get("/").content.decode()
    assert "查单" in html and "有货" in html and '<html lang="zh-Hans">' in html


def test_switch_is_remembered(shop_client, alpha, catalog):
    client = shop_client(alpha)
    switched = client.get("/", {"lang": "zh-hans"})
    assert "查单" in switched.content.decode() and "自动发货" in switched.content.decode()
    assert switched.cookies["django_language"].value == "zh-hans"
    # later pages, without the parameter, stay in Chinese
    html = client.get(f"/p/{catalog.card.pk}/").content.decode()
    assert "立即购买" in html and "数量" in html
    assert "查单" in client.get("/lookup/").content.decode()
    back = client.get("/", {"lang": "en"})
    assert "Find my order" in back.content.decode()
    assert "Find my order" in client.get("/lookup/").content.decode()
    # unknown languages fall back to the shop's
    assert "Find my order" in shop_client(alpha).get("/", {"lang": "xx"}).content.decode()


def test_language_links_keep_the_page_and_query(shop_client, alpha, catalog):
    html = shop_client(alpha).get("/", {"q": "steam"}).content.decode()
    assert 'href="/?q=steam&amp;lang=zh-hans"' in html


def test_every_page_has_the_switch(shop_client, alpha, catalog, buy):
    client, number = buy()
    for url in ["/", f"/p/{catalog.card.pk}/", f"/order/{number}/", "/lookup/", "/account/login/",
                "/account/register/", f"/c/{catalog.games.pk}/"]:
        html = client.get(url).content.decode()
        assert "lang=zh-hans" in html and "lang=en" in html, url


def test_errors_are_translated(shop_client, alpha, catalog, providers):
    client = shop_client(alpha)
    page = client.get(f"/p/{catalog.card.pk}/", {"lang": "zh-hans"})
    response = client.post(f"/p/{catalog.card.pk}/", {"token": token_of(page), "sku": catalog.sku30.pk,
                                                      "quantity": 50, "contact": "x@", "query_password": "pw",
                                                      "payment": "fake-redirect"})
    html = response.content.decode()
    assert "数量须在 1 到 10 之间。" in html
    response = client.post(f"/p/{catalog.card.pk}/", {"token": token_of(page), "sku": catalog.sku30.pk,
                                                      "quantity": 1, "contact": "x@", "query_password": "pw12",
                                                      "payment": "fake-redirect"})
    assert "请输入有效的邮箱或手机号。" in response.content.decode()


def test_order_language_follows_the_buyer(shop_client, alpha, catalog, providers):
    from django_tenants.utils import tenant_context

    from platform_core.orders.models import Order

    client = shop_client(alpha)
    page = client.get(f"/p/{catalog.card.pk}/", {"lang": "zh-hans"})
    client.post(f"/p/{catalog.card.pk}/", {"token": token_of(page), "sku": catalog.sku30.pk, "quantity": 1,
                                           "contact": "a@example.com", "query_password": "pw12",
                                           "payment": "fake-redirect"})
    with tenant_context(alpha):
        order = Order.objects.get()
        assert order.language == "zh-hans"
    connection.set_schema_to_public()
    html = client.get(f"/order/{order.number}/").content.decode()
    assert "待付款" in html and "订单号" in html
