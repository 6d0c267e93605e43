"""Races with real commits, each thread on its own database connection, in a shop made
for the purpose (dropped afterwards): one webhook delivered 100 times at once; a lock
wait that runs out (503, nothing half-written); two wallet payments racing for one
balance."""
from __future__ import annotations

import json
import threading

import pytest
import requests
from django.db import connection, connections, transaction
from django.test import Client
from django_tenants.utils import tenant_context

from platform_core.inventory.models import CardKey
from platform_core.orders.models import Order, OrderEvent
from platform_core.payments import views as payment_views
from platform_core.payments.models import Payment, WebhookEvent
from platform_core.payments.services import payment_start
from plugins.payment import PaymentError
from tenants import schema as schemas
from tenants.models import Domain, Merchant, Shop, ShopDataKey, ShopMembership
from tests.conftest import PASSWORD, host_of
from tests.payments.conftest import enable_sandbox, make_stock, place_order, signed_post
from tests.parallel import all_at_once

CLOSED_PORT_URL = "http://127.0.0.1:9/hooks/payments/sandbox/"  # discard port: nothing answers


@pytest.fixture
def race_shop(django_db_setup, django_db_blocker):
    """A shop whose data is really committed, so other connections see it."""
    from tenants.services import shop_create

    with django_db_blocker.unblock():
        shop = shop_create(slug="payrace", name="Pay Race", owner_email="racer-owner@example.com",
                           owner_password=PASSWORD, language="en", sample_catalog=False).shop
        try:
            yield shop
        finally:
            connections.close_all()  # the threads' connections are closed; close ours before dropping
            connection.set_schema_to_public()
            Domain.objects.filter(tenant=shop).delete()
            ShopMembership.objects.filter(shop=shop).delete()
            ShopDataKey.objects.filter(shop=shop).delete()
            schemas.drop_schema(shop.schema_name)
            Shop.objects.filter(pk=shop.pk).delete()
            Merchant.objects.filter(email="racer-owner@example.com").delete()


def in_parallel(count: int, work) -> list:
    return all_at_once(count, work)


def paid_at_gateway_without_webhook(shop, gateway, api_key, *, quantity=3):
    """An order the buyer paid at the gateway whose webhook never reached the shop;
    returns (order, payment, sku, the event body the gateway signed)."""
    with tenant_context(shop):
        enable_sandbox(shop, gateway, api_key)
        sku, _ = make_stock(shop, keys=5)
        order = place_order(sku, quantity=quantity)
        payment, action = payment_start(order=order, provider_slug="sandbox", return_url="http://x.test/",
                                        notify_url=CLOSED_PORT_URL)
    assert requests.post(f"{action.url}/pay", allow_redirects=False, timeout=15).status_code == 303
    body = gateway.app.store.read("SELECT body FROM events WHERE type = 'payment.succeeded'")[0]["body"]
    assert json.loads(body)["data"]["object"]["reference"] == str(payment.pk)
    return order, payment, sku, body


def test_one_webhook_delivered_100_times_in_parallel_delivers_once(race_shop, gateway, api_key):
    order, payment, sku, body = paid_at_gateway_without_webhook(race_shop, gateway, api_key, quantity=3)
    host = host_of(race_shop)

    responses = in_parallel(100, lambda n: signed_post(Client(HTTP_HOST=host), body, api_key).status_code)

    assert responses == [200] * 100
    with tenant_context(race_shop):
        order.refresh_from_db()
        assert order.status == Order.Status.DELIVERED
        assert CardKey.objects.filter(sku=sku, status="sold").count() == 3
        assert CardKey.objects.filter(sku=sku, order_line__order=order).count() == 3
        assert WebhookEvent.objects.count() == 1 and WebhookEvent.objects.get().result == "paid"
        assert Payment.objects.filter(status="succeeded").count() == 1
        assert OrderEvent.objects.filter(order=order, kind="order.paid").count() == 1
        sku.refresh_from_db()
        assert (sku.available_count, sku.reserved_count, sku.sold_count) == (2, 0, 3)


def test_one_payment_reported_by_20_different_events_at_once_delivers_once(race_shop, gateway, api_key):
    """Each event is new (its own inbox row): all but the first wait for the order's lock
    and find it paid (the lines they read with the lock are never used then)."""
    order, payment, sku, body = paid_at_gateway_without_webhook(race_shop, gateway, api_key, quantity=2)
    host = host_of(race_shop)
    event = json.loads(body)

    def deliver(n):
        again = json.dumps({**event, "id": f"{event['id']}x{n}"})
        return signed_post(Client(HTTP_HOST=host), again, api_key).status_code

    assert in_parallel(20, deliver) == [200] * 20
    with tenant_context(race_shop):
        order.refresh_from_db()
        assert order.status == Order.Status.DELIVERED
        results = sorted(WebhookEvent.objects.values_list("result", flat=True))
        assert results == ["already_succeeded"] * 19 + ["paid"]
        assert CardKey.objects.filter(sku=sku, order_line__order=order, status="sold").count() == 2
        assert OrderEvent.objects.filter(order=order, kind="order.delivered").count() == 1
        sku.refresh_from_db()
        assert (sku.available_count, sku.reserved_count, sku.sold_count) == (3, 0, 2)


@pytest.mark.parametrize("held", ["payment row", "same event's inbox row"])
def test_a_lock_wait_that_runs_out_answers_503_and_the_retry_succeeds(race_shop, gateway, api_key, monkeypatch,
                                                                      held):
    order, payment, sku, body = paid_at_gateway_without_webhook(race_shop, gateway, api_key, quantity=1)
    monkeypatch.setattr(payment_views, "LOCK_TIMEOUT", "300ms")
    holding, release = threading.Event(), threading.Event()

    def hold_the_payment_row():
        try:
            with tenant_context(race_shop), transaction.atomic():
                if held == "payment row":
                    Payment.objects.select_for_update().get(pk=payment.pk)
                else:  # another delivery of the same event, not committed yet: the insert waits for it
                    WebhookEvent.objects.create(provider="sandbox", account="main", event_id=json.loads(body)["id"],
                                                kind="payment.succeeded", payload={})
                holding.set()
                release.wait(30)
                transaction.set_rollback(True)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_payment_row)
    holder.start()
    try:
        assert holding.wait(10)
        client = Client(HTTP_HOST=host_of(race_shop))
        busy = signed_post(client, body, api_key)
        assert busy.status_code == 503
        with tenant_context(race_shop):
            assert not WebhookEvent.objects.exists()  # nothing half-written: the retry is not a "duplicate"
    finally:
        release.set()
        holder.join(30)
    assert signed_post(client, body, api_key).status_code == 200
    with tenant_context(race_shop):
        order.refresh_from_db()
        assert order.status == Order.Status.DELIVERED
        assert WebhookEvent.objects.get().result == "paid"


def test_two_wallet_payments_race_for_one_balance(race_shop):
    from platform_core.customers.models import Customer, WalletEntry
    from platform_core.customers.services import customer_register, wallet_credit
    from plugins.services import plugin_configure

    with tenant_context(race_shop):
        plugin_configure(shop=race_shop, slug="wallet", data={}, enable=True)
        customer = customer_register(login="spender@example.com", password=PASSWORD)
        wallet_credit(customer=customer, amount=1000, kind="adjustment", reference="gift")
        sku, _ = make_stock(race_shop, keys=4, price=1000)
        orders = [place_order(sku, quantity=1, customer=customer) for _ in range(2)]

    def pay(n):
        with tenant_context(race_shop):
            return payment_start(order=orders[n], provider_slug="wallet", return_url="", notify_url="")[1].kind

    results = in_parallel(2, pay)

    assert sorted(map(type, results), key=str) == sorted([str, PaymentError], key=str), results
    with tenant_context(race_shop):
        customer.refresh_from_db()
        assert customer.wallet_balance == 0
        assert WalletEntry.objects.filter(kind="payment").count() == 1
        statuses = sorted(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("status", flat=True))
        assert statuses == [Order.Status.DELIVERED, Order.Status.PENDING_PAYMENT]
        assert sorted(Payment.objects.values_list("status", flat=True)) == ["failed", "succeeded"]
        assert Customer.objects.get(pk=customer.pk).wallet_balance == sum(
            WalletEntry.objects.filter(customer=customer).values_list("amount", flat=True))
