"""Every limit of a plan refuses exactly at the boundary (the N-th is allowed, the
(N+1)-th refused) with a message naming the plan that would allow it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.limits import limit_refusal, shop_plan
from billing.models import Plan
from platform_core.catalog import services as catalog
from platform_core.catalog.models import Product
from platform_core.orders import services as orders
from platform_core.orders.models import Order
from plugins.services import PluginError, plugin_configure, plugin_enable
from tenants import services as tenant_services
from tenants.models import Domain, Merchant, ShopMembership
from tests.billing.helpers import put_on_plan
from tests.commerce_helpers import make_product


def test_products_limit_refuses_the_21st_on_free_not_the_20th(alpha, plans):
    put_on_plan(alpha, "free")
    with tenant_context(alpha):
        for n in range(19):
            catalog.product_create(name=f"Card {n}")
        assert limit_refusal(alpha, "products") is None
        catalog.product_create(name="Card 20")  # the 20th: allowed
        with pytest.raises(catalog.CatalogError) as error:
            catalog.product_create(name="Card 21")
        assert error.value.code == "plan_limit" and error.value.status == 403
        assert str(error.value) == "Your Free plan allows 20 products. The Pro plan allows 500."
        assert Product.objects.count() == 20


def test_products_limit_on_business_is_unlimited(alpha, plans):
    put_on_plan(alpha, "business")
    with tenant_context(alpha):
        for n in range(25):
            catalog.product_create(name=f"Card {n}")
        assert Product.objects.count() == 25


def _merchants(count):
    return [Merchant.objects.create_user(f"staff{n}@example.com", "x" * 12) for n in range(count)]


def test_staff_seats_count_the_owner_and_stop_at_the_plan(alpha, plans):
    put_on_plan(alpha, "free")
    extra = _merchants(5)
    with pytest.raises(tenant_services.ShopCreationError) as error:
        tenant_services.membership_add(shop=alpha, email=extra[0].email, role="staff")
    assert error.value.code == "plan_limit"
    assert error.value.message == "Your Free plan allows 1 staff seat. The Pro plan allows 5."
    put_on_plan(alpha, "pro")  # 5 seats: owner + 4
    for merchant in extra[:4]:
        tenant_services.membership_add(shop=alpha, email=merchant.email, role="staff")
    with pytest.raises(tenant_services.ShopCreationError) as error:
        tenant_services.membership_add(shop=alpha, email=extra[4].email, role="staff")
    assert error.value.message == "Your Pro plan allows 5 staff seats. The Business plan allows 25."
    assert ShopMembership.objects.filter(shop=alpha).count() == 5


def test_custom_domains_limit(alpha, plans):
    put_on_plan(alpha, "free")
    with pytest.raises(tenant_services.ShopCreationError) as error:
        tenant_services.domain_add(shop=alpha, hostname="cards.example.com")
    assert error.value.message == "Your Free plan allows 0 custom domains. The Pro plan allows 1."
    put_on_plan(alpha, "pro")
    tenant_services.domain_add(shop=alpha, hostname="cards.example.com")  # the first: allowed
    with pytest.raises(tenant_services.ShopCreationError) as error:
        tenant_services.domain_add(shop=alpha, hostname="more.example.com")
    assert error.value.message == "Your Pro plan allows 1 custom domain. The Business plan allows 10."
    # the platform sub-domain never counts
    assert Domain.objects.filter(tenant=alpha).count() == 2


def test_domain_limit_in_the_console_shows_the_message(alpha, alice, shop_client, plans):
    put_on_plan(alpha, "free")
    page = shop_client(alpha, alice).post("/manage/domains/", {"domain": "cards.example.com"}, follow=True)
    assert "Your Free plan allows 0 custom domains. The Pro plan allows 1." in page.content.decode()
    assert not Domain.objects.filter(domain="cards.example.com").exists()


def _place(sku, n):
    return orders.order_place(lines=[orders.LineRequest(sku_id=sku.pk, quantity=1)], contact=f"b{n}@example.com",
                              query_password="1234", ip=f"10.0.{n // 250}.{n % 250}")


def test_monthly_orders_limit_refuses_the_101st_on_free(alpha, plans):
    put_on_plan(alpha, "free")
    with tenant_context(alpha):
        sku = make_product(type=Product.Type.MANUAL, price=500)
        template = _place(sku, 0)  # order 1 of the month
        # orders 2..99 of this month, and many from last month that do not count
        last_month = timezone.now() - timedelta(days=40)
        Order.objects.bulk_create(
            [Order(number=f"T{n:08d}", contact="x@example.com", currency="CNY", subtotal=500, total=500,
                   access_token=f"tok{n:040d}", created_at=timezone.now()) for n in range(98)]
            + [Order(number=f"L{n:08d}", contact="x@example.com", currency="CNY", subtotal=500, total=500,
                     access_token=f"old{n:040d}", created_at=last_month) for n in range(150)])
        assert template.pk
        assert _place(sku, 100).pk  # the 100th this month: allowed
        with pytest.raises(orders.OrderError) as error:
            _place(sku, 101)
        assert error.value.code == "plan_limit" and error.value.status == 403
        assert error.value.message == ("This shop cannot take more orders this month. "
                                       "This shop's Free plan allows 100 orders a month. The Pro plan allows 5000.")
        assert Order.objects.filter(created_at__gte=timezone.now() - timedelta(days=1)).count() == 100


def test_plugin_kind_not_in_plan_is_refused_naming_a_plan_that_has_it(alpha, plans):
    Plan.objects.create(code="payments-only", name="Payments only", monthly_fee=100, features=["plugins.payment"],
                        sort_order=9)
    put_on_plan(alpha, "payments-only")
    with tenant_context(alpha):
        with pytest.raises(PluginError) as error:
            plugin_configure(shop=alpha, slug="store-notice", data={"message": "Hi", "style": "info"}, enable=True)
        assert error.value.message == ("Your Payments only plan does not include marketing plugins such as "
                                       "Store notice. The Free plan includes them.")
        with pytest.raises(PluginError):
            plugin_enable(shop=alpha, slug="store-notice")
        plugin_enable(shop=alpha, slug="wallet")  # payments are in the plan


def test_a_plan_can_unlock_one_plugin_by_slug(alpha, plans):
    Plan.objects.create(code="notice", name="Notice", monthly_fee=100, features=["plugin.store-notice"])
    put_on_plan(alpha, "notice")
    with tenant_context(alpha):
        plugin_configure(shop=alpha, slug="store-notice", data={"message": "Hi", "style": "info"}, enable=True)
        with pytest.raises(PluginError):
            plugin_enable(shop=alpha, slug="wallet")


def test_cancelled_subscription_falls_back_to_free_limits(alpha, plans):
    put_on_plan(alpha, "business", status="cancelled")
    assert shop_plan(alpha).code == "free"


def test_a_request_reads_the_plan_once_and_sees_a_change_made_in_it(alpha, plans, monkeypatch):
    from billing import limits
    from platform_core.cache import request_scope

    put_on_plan(alpha, "free")
    reads = []
    original = limits._cached_plan
    monkeypatch.setattr(limits, "_cached_plan", lambda shop: reads.append(shop.pk) or original(shop))
    with request_scope():
        assert [shop_plan(alpha).code for _ in range(4)] == ["free"] * 4
        assert reads == [alpha.pk]
        put_on_plan(alpha, "pro")  # forgets the cached plan, and with it the request's copy
        assert shop_plan(alpha).code == "pro" and reads == [alpha.pk, alpha.pk]
    shop_plan(alpha)
    shop_plan(alpha)  # outside a request each call reads (the shared cache answers)
    assert len(reads) == 4
