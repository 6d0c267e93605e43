"""GMV metering: per shop and day, paid purchase orders minus refunds, read from the
shop's own schema and written as one upserted row in public (re-running a day gives
the same row)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Count, Sum
from django.utils import timezone
from django_tenants.utils import schema_context

from billing.models import DailyUsage


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Midnight to midnight in the billing time zone (settings.TIME_ZONE)."""
    tz = timezone.get_default_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), tz)
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), tz)


def _figures(day: date) -> dict:
    from platform_core.orders.models import Order
    from platform_core.payments.models import Refund

    start, end = day_bounds(day)
    paid = Order.objects.filter(kind=Order.Kind.PURCHASE, paid_at__gte=start, paid_at__lt=end).aggregate(
        amount=Sum("total"), count=Count("id"))
    refunded = Refund.objects.filter(status=Refund.Status.SUCCEEDED, payment__order__kind=Order.Kind.PURCHASE,
                                     created_at__gte=start, created_at__lt=end).aggregate(amount=Sum("amount"))
    return {"paid_amount": paid["amount"] or 0, "paid_orders": paid["count"] or 0,
            "refunded_amount": refunded["amount"] or 0}


def usage_meter_day(*, shop, day: date) -> DailyUsage:
    """Compute (or recompute) one shop's GMV for ``day``; idempotent upsert."""
    with schema_context(shop.schema_name):  # the platform reads a shop only through its schema
        figures = _figures(day)
    row, _ = DailyUsage.objects.update_or_create(
        shop=shop, day=day,
        defaults={**figures, "currency": shop.currency, "gmv": figures["paid_amount"] - figures["refunded_amount"],
                  "computed_at": timezone.now()})
    return row


def usage_meter_all(*, days: list[date]) -> int:
    """Meter every real shop for each of ``days`` (the beat job: yesterday and today)."""
    from tenants.models import Shop

    count = 0
    for shop in Shop.objects.real().order_by("pk"):
        for day in days:
            usage_meter_day(shop=shop, day=day)
            count += 1
    return count
