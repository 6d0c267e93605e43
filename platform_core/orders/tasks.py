"""Thin Celery wrappers; each runs in the shop schema it was sent from."""
import time

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import connection

#: set while a drain of the shop's delivery e-mails is on its way (per shop: the cache's
#: keys carry the schema); its lifetime bounds how long a lost wake-up delays e-mails
MAILER_WOKEN_KEY = "orders:mailer-woken"
MAILER_WOKEN_SECONDS = 30

#: per process: schema -> monotonic time until which this process's wake-ups are already
#: covered by a drain it woke or saw woken (see wake_order_mailer)
_wake_covered_until: dict[str, float] = {}


def wake_order_mailer() -> None:
    """After a commit that queued delivery e-mails: one drain per burst, not one
    Celery message per order (a message costs ~0.7 ms of the webhook's CPU; SET NX a
    tenth of that). The drain forgets the flag before it reads, so an e-mail queued
    while it runs wakes the next one.

    A process that set the flag, or found it set, skips even the SET NX for
    ``KAMENG_MAILER_WAKE_SECONDS`` (decision 0050): the flag it saw belongs to a drain
    that starts after that moment, and that drain asks for a follow-up drain as many
    seconds after it is done, which sends whatever was queued in between."""
    seconds = settings.KAMENG_MAILER_WAKE_SECONDS
    if seconds > 0:
        schema, now = connection.schema_name, time.monotonic()
        if _wake_covered_until.get(schema, 0.0) > now:
            return
        if len(_wake_covered_until) >= 10_000:
            _wake_covered_until.clear()
        _wake_covered_until[schema] = now + seconds
    if cache.add(MAILER_WOKEN_KEY, 1, MAILER_WOKEN_SECONDS):
        send_pending_order_emails.delay(follow_up_after=seconds)


def forget_wake_ups() -> None:
    """Forget which wake-ups this process covered (tests: each starts unwoken)."""
    _wake_covered_until.clear()


@shared_task(name="orders.send_pending_emails", autoretry_for=(OSError,), retry_backoff=5, max_retries=5,
             ignore_result=True)
def send_pending_order_emails(follow_up_after: float = 0) -> int:
    """The shop's queued delivery e-mails (woken after deliveries, and by the beat).
    A woken drain asks for one more drain ``follow_up_after`` seconds after it is done,
    for e-mails queued by processes that skipped waking meanwhile (wake_order_mailer)."""
    from platform_core.orders.services import order_emails_send_pending

    cache.delete(MAILER_WOKEN_KEY)
    sent = order_emails_send_pending()
    if follow_up_after > 0:
        send_pending_order_emails.apply_async(countdown=follow_up_after)
    return sent


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
