"""What the Alipay, WeChat Pay and EPay tests share: an order waiting for payment, and
the checks that a rejected notification changed nothing."""
from __future__ import annotations

import secrets

from platform_core.inventory.models import CardKey
from platform_core.orders.models import Order
from platform_core.orders.services import order_delivered_items
from platform_core.payments.models import WebhookEvent
from platform_core.payments.services import payment_start
from tests.payments.conftest import make_stock, place_order

RETURN_URL = "http://alpha.kameng.test/order/return/"


def digits(count: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(count))


def start_payment(shop, slug: str, notify_url: str, *, quantity: int = 2, keys: int = 3, price: int = 1000):
    """Stock, an order for ``quantity`` keys and a payment started with ``slug``."""
    sku, plaintexts = make_stock(shop, keys=keys, price=price)
    order = place_order(sku, quantity=quantity)
    payment, action = payment_start(order=order, provider_slug=slug, return_url=RETURN_URL, notify_url=notify_url)
    payment.refresh_from_db()
    return {"sku": sku, "plaintexts": plaintexts, "order": order, "payment": payment, "action": action}


def assert_delivered(started, *, quantity: int = 2) -> None:
    order, payment = started["order"], started["payment"]
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.DELIVERED and payment.status == "succeeded"
    keys = [item.secret for item in order_delivered_items(order)]
    assert len(keys) == quantity and set(keys) <= set(started["plaintexts"])  # the buyer can read them
    assert CardKey.objects.filter(sku=started["sku"], status="sold").count() == quantity


def assert_untouched(started, *, events: int = 0) -> None:
    order, payment = started["order"], started["payment"]
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT and payment.status == "pending"
    assert not order.events.filter(kind="order.paid").exists()
    assert CardKey.objects.filter(sku=started["sku"], status="sold").count() == 0
    assert WebhookEvent.objects.filter(result="paid").count() == 0
    assert WebhookEvent.objects.count() == events
