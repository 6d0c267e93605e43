"""The one place that answers what a shop's plan allows: limits and features.

Every check in the product asks here (catalog, plugins, domains, team, checkout) and
gets either None (allowed) or a plain sentence naming the plan that would allow it.
A limit of N allows exactly N: the (N+1)-th is refused, the N-th is not — also when
requests race: near the limit, ``limit_refusal`` called inside the caller's transaction
serialises the count and the caller's insert per shop and limit (decision 0035).
"""
from __future__ import annotations

from contextlib import nullcontext

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from platform_core.cache import read_on_every_shop_request, remembered_for_request

PLAN_CACHE_SECONDS = 60
#: with at least this much room left, no lock is taken: that many requests would have to
#: be between their check and their commit at once to overshoot (checkout stays parallel)
LOCK_WHEN_ROOM_BELOW = 50

# limit name -> (singular, plural) for messages
LIMITS = {
    "products": ("product", "products"),
    "staff_seats": ("staff seat", "staff seats"),
    "custom_domains": ("custom domain", "custom domains"),
    "monthly_orders": ("order a month", "orders a month"),
}


def _cache_key(shop_id) -> str:
    return f"billing:plan:v1:{shop_id}"


read_on_every_shop_request(lambda shop: _cache_key(shop.pk))


def forget_plan_cache(shop) -> None:
    """Called on every plan or status change. The cache key function prefixes keys with
    the active schema, so the entry is dropped in public and in the shop's schema."""
    for schema in ("public", shop.schema_name):
        with schema_context(schema):
            cache.delete(_cache_key(shop.pk))


def _load_plan(shop):
    from billing.models import Plan, Subscription

    subscription = Subscription.objects.select_related("plan").filter(shop_id=shop.pk).first()
    if subscription is None:
        # a shop that has no subscription yet (created before billing): the trial plan
        code = settings.KAMENG_BILLING_TRIAL_PLAN
    elif subscription.status == Subscription.Status.CANCELLED:
        code = settings.KAMENG_BILLING_FALLBACK_PLAN
    else:
        return subscription.plan
    return Plan.objects.filter(code=code).first()


def shop_plan(shop):
    """The plan whose limits and features apply to ``shop`` now (None: no plans seeded)."""
    if shop is None or not getattr(shop, "pk", None):
        return None
    # asked several times per request (each enabled plugin, the order limit): one copy per
    # request; forget_plan_cache writes to the cache, which forgets it
    return remembered_for_request(("shop_plan", connection.schema_name, shop.pk), lambda: _cached_plan(shop))


def _cached_plan(shop):
    key = _cache_key(shop.pk)
    # decoded once per process for each cached value and shared (decision 0052): every
    # request reads the plan, nothing changes this instance (plan changes save fresh rows)
    plan = cache.derived(key, _as_cached)
    if plan is None:
        plan = _load_plan(shop) or False
        cache.set(key, plan, PLAN_CACHE_SECONDS)
    return plan or None


def _as_cached(plan):
    return plan


def plan_features(shop) -> frozenset[str] | None:
    plan = shop_plan(shop)
    return None if plan is None else frozenset(plan.features or ())


def _cheapest_plan(allows) -> object | None:
    from billing.models import Plan

    for plan in Plan.objects.filter(is_active=True).order_by("monthly_fee", "sort_order"):
        if allows(plan):
            return plan
    return None


def feature_refusal(shop, features, label: str) -> str | None:
    """None if the shop's plan includes any of ``features``; else why not, naming the
    cheapest plan that does."""
    plan = shop_plan(shop)
    if plan is None:
        return None
    wanted = set(features)
    if wanted & set(plan.features or ()):
        return None
    better = _cheapest_plan(lambda p: bool(wanted & set(p.features or ())))
    tail = f" The {better.name} plan includes them." if better else ""
    return f"Your {plan.name} plan does not include {label}.{tail}"


def _in_shop(shop):
    return nullcontext() if connection.schema_name == shop.schema_name else schema_context(shop.schema_name)


def month_start(now=None):
    """Midnight on the first of this month in the billing time zone."""
    local = timezone.localtime(now or timezone.now())
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usage(shop, limit: str) -> int:
    """How much of ``limit`` the shop uses now."""
    if limit == "products":
        from platform_core.catalog.models import Product

        with _in_shop(shop):
            return Product.objects.count()
    if limit == "staff_seats":
        from tenants.models import ShopMembership

        return ShopMembership.objects.filter(shop_id=shop.pk).count()
    if limit == "custom_domains":
        from tenants.models import Domain

        return Domain.objects.filter(tenant_id=shop.pk, is_platform_subdomain=False).count()
    if limit == "monthly_orders":
        from platform_core.orders.models import Order

        with _in_shop(shop):
            return Order.objects.filter(kind=Order.Kind.PURCHASE, created_at__gte=month_start()).count()
    raise ValueError(f"unknown limit {limit!r}; known: {', '.join(LIMITS)}")


def limit_refusal(shop, limit: str, *, adding: int = 1, whose: str = "Your") -> str | None:
    """None if the shop may add ``adding`` more of ``limit``; else a sentence that names
    the plan that would allow it (``whose``: "Your" for the shop's team, "This shop's"
    where a buyer reads it)."""
    plan = shop_plan(shop)
    if plan is None:
        return None
    allowed = plan.limit(limit)
    if allowed is None:
        return None
    used = usage(shop, limit)
    if used + adding <= allowed - LOCK_WHEN_ROOM_BELOW:
        return None
    if used + adding <= allowed and connection.in_atomic_block:
        # Near the limit: wait for whoever else is between this check and their insert
        # (the lock lasts until the caller's transaction ends), then count again.
        _lock_limit(shop, limit)
        used = usage(shop, limit)
    if used + adding <= allowed:
        return None
    singular, plural = LIMITS[limit]
    needed = used + adding
    better = _cheapest_plan(lambda p: p.limit(limit) is None or p.limit(limit) >= needed)
    if better is None:
        tail = " No plan allows more."
    elif better.limit(limit) is None:
        tail = f" The {better.name} plan has no limit."
    else:
        tail = f" The {better.name} plan allows {better.limit(limit)}."
    return f"{whose} {plan.name} plan allows {allowed} {singular if allowed == 1 else plural}.{tail}"


def _lock_limit(shop, limit: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"plan-limit:{limit}:{shop.pk}"])


def shop_usage(shop) -> list[dict]:
    """Usage against every limit, for the shop's billing page and API."""
    plan = shop_plan(shop)
    rows = []
    for limit, (singular, plural) in LIMITS.items():
        rows.append({"limit": limit, "label": plural, "used": usage(shop, limit),
                     "allowed": plan.limit(limit) if plan else None})
    return rows
