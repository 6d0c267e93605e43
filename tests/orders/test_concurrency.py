"""Under real concurrency (threads, separate connections, committed data): no key sold
twice, none lost, and a webhook delivered many times at once pays once."""
from __future__ import annotations


import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from platform_core.inventory.models import CardKey, DeliveredKey
from platform_core.inventory.stock import recount
from platform_core.orders import services
from platform_core.orders.models import Order, OrderEvent
from platform_core.orders.services import LineRequest, OrderError
from platform_core.payments.models import Payment, WebhookEvent
from platform_core.payments.services import record_event
from plugins.payment import GatewayEvent
from tests.commerce_helpers import make_product
from tests.parallel import all_at_once

COMMERCE_TABLES = ["inventory_deliveredkey", "inventory_cardkey", "inventory_importbatch", "payments_webhookevent",
                   "payments_refund", "payments_payment", "orders_ticketmessage", "orders_ticket", "orders_orderevent",
                   "orders_orderline", "orders_order", "catalog_wholesaleprice", "catalog_sku", "catalog_product",
                   "catalog_category", "customers_walletentry", "customers_customer"]


@pytest.fixture
def committed_alpha(django_db_setup, django_db_blocker):
    from tenants.models import Shop

    with django_db_blocker.unblock():
        shop = Shop.objects.get(slug="alpha")
        with tenant_context(shop):
            yield shop
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE " + ", ".join(COMMERCE_TABLES) + " RESTART IDENTITY CASCADE")
        connection.set_schema_to_public()


def run_in_threads(count, target):
    """``target(n)`` on ``count`` threads at once, each inside the alpha shop."""
    def in_alpha(n):
        from tenants.models import Shop

        with tenant_context(Shop.objects.get(slug="alpha")):
            return target(n)

    return all_at_once(count, in_alpha)


def _pay(order_id):
    order = Order.objects.get(pk=order_id)
    payment = Payment.objects.create(order=order, provider="test-pay", amount=order.total, currency=order.currency)
    return record_event(provider="test-pay", event=GatewayEvent(
        event_id=f"evt-{payment.pk}", kind="payment.succeeded", payment_reference=str(payment.pk),
        amount=order.total, currency=order.currency))


def test_fifty_parallel_checkouts_for_twenty_keys(committed_alpha):
    sku = make_product(keys=20)

    def checkout(n):
        order = services.order_place(lines=[LineRequest(sku.pk, 1)], contact=f"racer{n}@example.com",
                                     query_password="1234")
        return _pay(order.pk) and order.pk

    results = run_in_threads(50, checkout)
    orders = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, OrderError)]
    assert len(orders) == 20 and len(refused) == 30, results
    assert all(error.code == "out_of_stock" for error in refused)
    assert Order.objects.filter(status="delivered").count() == 20
    # every key sold exactly once, each to exactly one order, none lost
    assert CardKey.objects.filter(sku=sku, status="sold").count() == 20
    assert DeliveredKey.objects.values("card_key").distinct().count() == 20
    assert DeliveredKey.objects.values("order_line__order").distinct().count() == 20
    assert recount(sku.pk) == {"available": 0, "reserved": 0, "sold": 20}
    sku.refresh_from_db()
    assert (sku.available_count, sku.reserved_count, sku.sold_count) == (0, 0, 20)


def test_a_webhook_delivered_100_times_in_parallel_delivers_once(committed_alpha):
    sku = make_product(keys=3)
    order = services.order_place(lines=[LineRequest(sku.pk, 2)], contact="once@example.com", query_password="1234")
    payment = Payment.objects.create(order=order, provider="test-pay", amount=order.total, currency=order.currency)
    event = GatewayEvent(event_id="evt-storm", kind="payment.succeeded", payment_reference=str(payment.pk),
                         amount=order.total, currency=order.currency)

    results = run_in_threads(100, lambda n: record_event(provider="test-pay", event=event))
    assert sorted(set(map(str, results))) == ["duplicate", "paid"], set(map(str, results))
    assert results.count("paid") == 1
    assert WebhookEvent.objects.count() == 1
    assert DeliveredKey.objects.filter(order_line__order=order).count() == 2
    assert OrderEvent.objects.filter(order=order, kind="order.paid").count() == 1
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"


def test_parallel_checkouts_of_one_contact_respect_the_open_order_limit(committed_alpha):
    sku = make_product(keys=30)

    def checkout(n):
        return services.order_place(lines=[LineRequest(sku.pk, 1)], contact="greedy@example.com",
                                    query_password="1234").pk

    results = run_in_threads(10, checkout)
    placed = [r for r in results if isinstance(r, int)]
    assert len(placed) == 3, results  # the default limit, not a few more
    assert all(isinstance(r, OrderError) and r.code == "too_many_open_orders" for r in results if r not in placed)
    sku.refresh_from_db()
    assert sku.reserved_count == 3
