"""Limits under concurrency, with real threads each on its own connection, committing:
requests that race at the boundary end with exactly the limit, never one more; plans
without the limit (or far from it) take no lock, so checkout stays parallel."""
from __future__ import annotations


import pytest
from django.db import connection, transaction
from django_tenants.utils import tenant_context

from billing.limits import LOCK_WHEN_ROOM_BELOW, forget_plan_cache, limit_refusal
from billing.models import Plan, Subscription
from platform_core.catalog import services as catalog
from platform_core.catalog.models import Product
from tenants import schema as schemas
from tenants.services import membership_add
from tests.conftest import PASSWORD
from tests.parallel import all_at_once

RACERS = 8


@pytest.fixture
def racing_shop(django_db_setup, django_db_blocker):
    """A shop of its own, committed (threads cannot see a test's open transaction),
    on the Free plan (20 products, 1 staff seat); dropped afterwards."""
    from tenants.models import Domain, Merchant, Shop, ShopDataKey, ShopMembership
    from tenants.services import shop_create

    with django_db_blocker.unblock():
        shop = shop_create(slug="limitrace", name="Limit Race", owner_email="limitrace@example.com",
                           owner_password=PASSWORD, sample_catalog=False).shop
        Subscription.objects.filter(shop=shop).update(plan=Plan.objects.get(code="free"), status="active")
        forget_plan_cache(shop)
        yield shop
        connection.set_schema_to_public()
        forget_plan_cache(shop)
        Domain.objects.filter(tenant=shop).delete()
        ShopMembership.objects.filter(shop=shop).delete()
        ShopDataKey.objects.filter(shop=shop).delete()
        schemas.drop_schema(shop.schema_name)
        Shop.objects.filter(pk=shop.pk).delete()
        Merchant.objects.filter(email__endswith="@limitrace.example").delete()
        Merchant.objects.filter(email="limitrace@example.com").delete()


def _all_at_once(count, work):
    return all_at_once(count, work, timeout=60)


def test_parallel_product_creations_at_the_boundary_end_with_exactly_the_limit(racing_shop):
    shop = racing_shop
    with tenant_context(shop):
        for n in range(17):
            catalog.product_create(name=f"Card {n}")

    def create(n):
        with tenant_context(shop):
            try:
                catalog.product_create(name=f"Racer {n}")
            except catalog.CatalogError as exc:
                return exc.code, str(exc)
            return "created", ""

    for _round in range(2):  # a second wave at the full limit: all refused
        results = _all_at_once(RACERS, create)
        assert not [r for r in results if isinstance(r, Exception)], results
    with tenant_context(shop):
        assert Product.objects.count() == 20
        assert Product.objects.filter(name__startswith="Racer").count() == 3
    refusals = [message for code, message in results if code == "plan_limit"]
    assert refusals == ["Your Free plan allows 20 products. The Pro plan allows 500."] * RACERS


def test_parallel_team_invitations_take_exactly_the_free_seats(racing_shop):
    from tenants.models import Merchant, ShopMembership

    shop = racing_shop
    Subscription.objects.filter(shop=shop).update(plan=Plan.objects.get(code="pro"))  # 5 seats, owner included
    forget_plan_cache(shop)
    emails = [Merchant.objects.create_user(f"m{n}@limitrace.example", "x" * 12).email for n in range(RACERS)]

    def invite(n):
        try:
            membership_add(shop=shop, email=emails[n], role="staff")
        except Exception as exc:  # noqa: BLE001 - the refusal is the expected outcome for some
            return getattr(exc, "code", repr(exc))
        return "added"

    results = _all_at_once(RACERS, invite)
    assert sorted(results) == ["added"] * 4 + ["plan_limit"] * (RACERS - 4)
    assert ShopMembership.objects.filter(shop=shop).count() == 5


def _advisory_locks_held() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        return cursor.fetchone()[0]


def test_no_lock_without_the_limit_or_far_from_it_and_a_lock_near_it(racing_shop):
    shop = racing_shop
    with tenant_context(shop):
        for code, expect_lock in (("business", False), ("pro", False), ("free", True)):
            Subscription.objects.filter(shop=shop).update(plan=Plan.objects.get(code=code))
            forget_plan_cache(shop)
            with transaction.atomic():
                assert limit_refusal(shop, "products") is None
                assert _advisory_locks_held() == (1 if expect_lock else 0), code
            assert _advisory_locks_held() == 0  # released with the transaction
    assert Plan.objects.get(code="pro").max_products - 1 >= LOCK_WHEN_ROOM_BELOW
