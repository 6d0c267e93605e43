"""Thin Celery wrappers; each runs in the shop schema it was sent from."""
from celery import shared_task
from django.core.mail import send_mail
from django.db import connection
from django.template.loader import render_to_string
from django.utils import translation


@shared_task(name="orders.send_order_email", autoretry_for=(OSError,), retry_backoff=5, max_retries=5,
             ignore_result=True)
def send_order_email(order_id: int) -> None:
    """The keys by e-mail, once delivered (idempotent: it describes the current state)."""
    from platform_core.orders.models import Order
    from platform_core.orders.services import order_delivered_items

    order = Order.objects.filter(pk=order_id).first()
    if order is None or not order.contact_email or order.kind != Order.Kind.PURCHASE:
        return
    shop = connection.tenant
    language = order.language or getattr(shop, "language", "en")
    with translation.override(language):
        context = {"order": order, "shop": shop, "items": order_delivered_items(order),
                   "order_url": _order_url(shop, order), "LANGUAGE_CODE": language}
        send_mail(subject=f"{shop.name}: order {order.number}",
                  message=render_to_string("orders/email/delivered.txt", context),
                  from_email=None, recipient_list=[order.contact_email])


def _order_url(shop, order) -> str:
    from tenants.services import shop_url

    return shop_url(shop, f"/order/{order.number}/?t={order.access_token}")


@shared_task(name="orders.check_low_stock", ignore_result=True)
def check_low_stock(sku_ids: list[int]) -> None:
    try:
        from platform_core.inventory.services import stock_check_low
    except ImportError:
        return
    from platform_core.catalog.models import SKU

    for sku in SKU.objects.select_related("product").filter(pk__in=sku_ids):
        stock_check_low(sku)


@shared_task(name="orders.expire_due", ignore_result=True)
def expire_due() -> int:
    from platform_core.orders.services import orders_expire_due

    return orders_expire_due()


@shared_task(name="orders.refund_stale_awaiting_stock", ignore_result=True)
def refund_stale_awaiting_stock() -> int:
    from platform_core.orders.services import orders_refund_stale_awaiting_stock

    return orders_refund_stale_awaiting_stock()


@shared_task(name="payments.poll_pending", ignore_result=True)
def poll_pending_payments() -> int:
    from platform_core.payments.services import payments_poll_pending

    return payments_poll_pending()


@shared_task(name="payments.check_order", ignore_result=True)
def check_order_payments(order_id: int) -> int:
    from platform_core.payments.services import payments_check_order

    return payments_check_order(order_id=order_id)
