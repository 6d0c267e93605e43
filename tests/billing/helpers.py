"""Builders for billing tests."""
from __future__ import annotations

from billing.limits import forget_plan_cache
from billing.models import Plan, Subscription


def put_on_plan(shop, code: str, *, status: str | None = None) -> Subscription:
    """Set a shop's plan directly (tests of limits; plan changes have their own tests)."""
    subscription = Subscription.objects.get(shop=shop)
    subscription.plan = Plan.objects.get(code=code)
    if status:
        subscription.status = status
    subscription.save()
    forget_plan_cache(shop)
    return subscription
