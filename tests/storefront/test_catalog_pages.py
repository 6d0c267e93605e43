"""Home, search, categories, hot products and the product page."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from tests.storefront.conftest import mark_paid

pytestmark = pytest.mark.django_db


def test_home_lists_visible_products_and_hides_invisible_ones(shop_client, alpha, catalog):
    page = shop_client(alpha).get("/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Steam Wallet Code" in html and "VIP Membership Card" in html and "Mobile Top-up" in html
    assert "Secret Hidden Thing" not in html
    # price from the cheapest SKU, stock state, member-only badge
    assert "from ¥10.00" in html
    assert "Sold out" in html  # Empty Voucher has no keys
    assert "In stock" in html
    assert "Members" in html
    # two-level categories: top level on the home page
    assert "Games" in html and "Gift cards" in html


def test_another_shop_sees_none_of_it(shop_client, bravo, catalog):
    html = shop_client(bravo).get("/").content.decode()
    assert "Steam Wallet Code" not in html


def test_search_by_name(shop_client, alpha, catalog):
    html = shop_client(alpha).get("/", {"q": "wallet"}).content.decode()
    assert "Steam Wallet Code" in html
    assert "Mobile Top-up" not in html
    assert "Secret Hidden Thing" not in shop_client(alpha).get("/", {"q": "secret"}).content.decode()
    nothing = shop_client(alpha).get("/", {"q": "no such thing"})
    assert nothing.status_code == 200 and "Nothing matches your search." in nothing.content.decode()


def test_search_survives_odd_input(shop_client, alpha, catalog):
    for query in ["%", "_", "'; drop table x; --", "x" * 5000, "\\"]:
        assert shop_client(alpha).get("/", {"q": query, "page": "abc"}).status_code == 200


def test_category_filter_two_levels(shop_client, alpha, catalog):
    client = shop_client(alpha)
    top = client.get(f"/c/{catalog.games.pk}/").content.decode()
    assert "Steam Wallet Code" in top and "Mobile Top-up" not in top  # products of sub-categories included
    assert f'href="/c/{catalog.steam.pk}/"' in top  # sub-categories offered
    child = client.get(f"/c/{catalog.steam.pk}/").content.decode()
    assert "Steam Wallet Code" in child and "VIP Membership Card" not in child
    gift = client.get(f"/c/{catalog.gift.pk}/").content.decode()
    assert "Mobile Top-up" in gift and "Steam Wallet Code" not in gift and "Secret Hidden Thing" not in gift
    assert client.get("/c/999999/").status_code == 404


def test_hidden_category_is_not_found(shop_client, alpha, catalog):
    with tenant_context(alpha):
        catalog.gift.is_visible = False
        catalog.gift.save()
    connection.set_schema_to_public()
    assert shop_client(alpha).get(f"/c/{catalog.gift.pk}/").status_code == 404


def test_hot_products_by_recent_sales(shop_client, alpha, catalog, buy):
    from platform_core.orders.models import Order
    from platform_core.storefront.selectors import products_hot

    assert "Hot right now" not in shop_client(alpha).get("/").content.decode()
    _client, number = buy()
    mark_paid(alpha, number)
    with tenant_context(alpha):
        from django.core.cache import cache

        cache.clear()  # the list is cached for a minute
        hot = products_hot(5)
        assert [p.name for p in hot] == ["Steam Wallet Code"]
    connection.set_schema_to_public()
    html = shop_client(alpha).get("/").content.decode()
    assert "Hot right now" in html
    # sales older than a week do not count
    with tenant_context(alpha):
        Order.objects.filter(number=number).update(paid_at=timezone.now() - timedelta(days=8))
        from django.core.cache import cache

        cache.clear()
        assert products_hot(5) == []
    connection.set_schema_to_public()


def test_unpaid_orders_are_not_hot(alpha, catalog, buy):
    from platform_core.storefront.selectors import products_hot

    buy()
    with tenant_context(alpha):
        assert products_hot(5) == []


def test_product_page_shows_options_tiers_and_server_price(shop_client, alpha, catalog):
    client = shop_client(alpha)
    page = client.get(f"/p/{catalog.card.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "30 days" in html and "90 days" in html
    assert "¥10.00" in html and "¥25.00" in html
    assert "5+" in html and "¥9.00" in html  # wholesale tier table
    assert 'name="query_password"' in html and 'name="contact"' in html
    assert "Fake Pay" not in html  # no payment method enabled: nothing to choose
    assert "cannot take payments" in html
    # five or more cost the tier price: the server computes it
    five = client.get(f"/p/{catalog.card.pk}/", {"sku": catalog.sku30.pk, "qty": 5}).content.decode()
    assert "¥45.00" in five
    quote = client.get(f"/p/{catalog.card.pk}/price.json", {"sku": catalog.sku30.pk, "qty": 5}).json()
    assert quote["unit"] == 900 and quote["total"] == 4500 and quote["total_text"] == "¥45.00"
    quote = client.get(f"/p/{catalog.card.pk}/price.json", {"sku": catalog.sku90.pk, "qty": "x"}).json()
    assert quote["unit"] == 2500 and quote["quantity"] == 1
    quote = client.get(f"/p/{catalog.card.pk}/price.json", {"sku": catalog.sku30.pk, "qty": 10**30}).json()
    assert quote["quantity"] == 10  # clamped to the product's maximum


def test_product_page_lists_enabled_payment_methods(shop_client, alpha, catalog, providers):
    html = shop_client(alpha).get(f"/p/{catalog.card.pk}/").content.decode()
    assert "Fake Pay" in html and 'data-testid="buy"' in html


def test_description_is_sanitised(shop_client, alpha, catalog):
    html = shop_client(alpha).get(f"/p/{catalog.card.pk}/").content.decode()
    assert "<b>Steam</b>" in html
    assert "<script>alert(1)" not in html and "onerror" not in html


def test_hidden_or_unknown_product_is_not_found(shop_client, alpha, catalog):
    client = shop_client(alpha)
    assert client.get(f"/p/{catalog.hidden.pk}/").status_code == 404
    assert client.get("/p/999999/").status_code == 404
    assert client.get(f"/p/{catalog.hidden.pk}/price.json").status_code == 404


def test_product_with_no_active_sku_is_hidden(shop_client, alpha, catalog):
    with tenant_context(alpha):
        catalog.soldout_sku.is_active = False
        catalog.soldout_sku.save()
    connection.set_schema_to_public()
    client = shop_client(alpha)
    assert "Empty Voucher" not in client.get("/").content.decode()
    assert client.get(f"/p/{catalog.soldout.pk}/").status_code == 404


def test_sold_out_product_says_so(shop_client, alpha, catalog, providers):
    html = shop_client(alpha).get(f"/p/{catalog.soldout.pk}/").content.decode()
    assert "Sold out" in html


def test_members_only_product_asks_guests_to_sign_in(shop_client, alpha, catalog, providers):
    html = shop_client(alpha).get(f"/p/{catalog.members.pk}/").content.decode()
    assert "Only members can buy this product." in html and "/account/login/?next=" in html


def test_top_up_product_asks_for_the_account(shop_client, alpha, catalog, providers):
    html = shop_client(alpha).get(f"/p/{catalog.topup.pk}/").content.decode()
    assert "Phone number" in html and 'name="account"' in html


def test_loop_key_counts_as_stock(shop_client, alpha, catalog):
    from tests.storefront.conftest import add_keys

    with tenant_context(alpha):
        add_keys(alpha, catalog.soldout_sku, ["SHARED-DOWNLOAD"], loop=True)
    connection.set_schema_to_public()
    html = shop_client(alpha).get(f"/c/{catalog.gift.pk}/").content.decode()
    card = html.split("Empty Voucher", 1)[1].split("</a>", 1)[0]
    assert "In stock" in card
