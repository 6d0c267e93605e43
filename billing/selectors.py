"""Billing reads for consoles and the API."""
from __future__ import annotations

from datetime import date

from django.db.models import Count, Q, Sum

from billing.models import DailyUsage, Invoice, Plan, Subscription


def plans_on_offer():
    return Plan.objects.filter(is_active=True).order_by("monthly_fee", "sort_order")


def subscription_for(shop) -> Subscription | None:
    return Subscription.objects.select_related("plan").filter(shop_id=shop.pk).first()


def usage_between(shop, first: date, end: date) -> dict:
    """GMV figures of ``shop`` for [first, end)."""
    totals = DailyUsage.objects.filter(shop_id=shop.pk, day__gte=first, day__lt=end).aggregate(
        gmv=Sum("gmv"), paid=Sum("paid_amount"), refunded=Sum("refunded_amount"), orders=Sum("paid_orders"))
    return {key: value or 0 for key, value in totals.items()}


def invoices_for_shop(shop):
    """Only this shop's invoices: every caller filters by the shop of the request."""
    return Invoice.objects.filter(shop_id=shop.pk).order_by("-issued_at", "-id")


def amount_due(invoice: Invoice) -> int:
    """What is left to pay on an invoice after its credit notes (minor units)."""
    if invoice.kind != Invoice.Kind.INVOICE or invoice.status == Invoice.Status.PAID:
        return 0
    credited = invoice.credit_notes.aggregate(total=Sum("total"))["total"] or 0
    return max(invoice.total + credited, 0)


def revenue_summary(*, first: date, end: date) -> dict:
    """Platform dashboard: MRR, shops by subscription state, GMV and invoiced amounts."""
    subs = Subscription.objects.exclude(shop__status__in=["template", "spare"])
    counts = subs.aggregate(
        active=Count("id", filter=Q(status="active")), trialing=Count("id", filter=Q(status="trial")),
        past_due=Count("id", filter=Q(status="past_due")), suspended=Count("id", filter=Q(status="suspended")),
        churned=Count("id", filter=Q(status="cancelled")))
    # MRR: monthly fees of subscriptions that pay (active, past due), per currency
    mrr = {row["plan__currency"]: row["mrr"] for row in subs.filter(status__in=["active", "past_due"], complimentary=False)
           .values("plan__currency").annotate(mrr=Sum("plan__monthly_fee"))}
    gmv = {row["currency"]: row["gmv"] for row in DailyUsage.objects.filter(day__gte=first, day__lt=end)
           .values("currency").annotate(gmv=Sum("gmv"))}
    daily = list(DailyUsage.objects.filter(day__gte=first, day__lt=end).values("day").annotate(gmv=Sum("gmv"))
                 .order_by("day"))
    by_currency = (Invoice.objects.filter(kind=Invoice.Kind.INVOICE, issued_at__date__gte=first,
                                          issued_at__date__lt=end)
                   .values("currency").annotate(invoiced_sum=Sum("total"),
                                                paid_sum=Sum("total", filter=Q(status="paid"))))
    return {"counts": counts, "mrr": mrr, "gmv": gmv, "daily_gmv": daily,
            "invoiced": {row["currency"]: row["invoiced_sum"] or 0 for row in by_currency},
            "collected": {row["currency"]: row["paid_sum"] or 0 for row in by_currency}}


def daily_usage(shop, *, days: int = 31):
    """The shop's metered days, newest first (its billing page)."""
    return DailyUsage.objects.filter(shop_id=shop.pk).order_by("-day")[:days]


def saved_card(shop, provider: str):
    """The card the platform's provider charges for this shop's invoices, or None."""
    from billing.models import BillingCustomer

    return BillingCustomer.objects.filter(shop_id=shop.pk, provider=provider).exclude(payment_method_id="").first()
