"""Thin Celery wrappers; each runs in the shop schema it was sent from."""
from celery import shared_task
from django.core.cache import cache

#: set while a drain of the shop's delivery e-mails is on its way (per shop: the cache's
#: keys carry the schema); its lifetime bounds how long a lost wake-up delays e-mails
MAILER_WOKEN_KEY = "orders:mailer-woken"
MAILER_WOKEN_SECONDS = 30


def wake_order_mailer() -> None:
    """After a commit that queued delivery e-mails: one drain per burst, not one
    Celery message per order (a message costs ~0.7 ms of the webhook's CPU; SET NX a
    tenth of that). The drain forgets the flag before it reads, so an e-mail queued
    while it runs wakes the next one."""
    if cache.add(MAILER_WOKEN_KEY, 1, MAILER_WOKEN_SECONDS):
        send_pending_order_emails.delay()


@shared_task(name="orders.send_pending_emails", autoretry_for=(OSError,), retry_backoff=5, max_retries=5,
             ignore_result=True)
def send_pending_order_emails() -> int:
    """The shop's queued delivery e-mails (woken after deliveries, and by the beat)."""
    from platform_core.orders.services import order_emails_send_pending

    cache.delete(MAILER_WOKEN_KEY)
    return order_emails_send_pending()


@shared_task(name="orders.send_order_email", autoretry_for=(OSError,), retry_backoff=5, max_retries=5,
             ignore_result=True)
def send_order_email(order_id: int) -> None:
    """One order's e-mail; what deliveries sent before e-mails were queued (decision
    0044), kept so such messages still waiting in the broker are sent."""
    from platform_core.orders.services import order_email_send

    order_email_send(order_id)


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
