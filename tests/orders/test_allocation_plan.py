"""Allocation must read only available keys of one SKU through an index, never scan
sold keys (measured: a hot product whose sold rows are scanned drops to ~470 tps)."""
from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from platform_core.inventory.models import CardKey
from tests.commerce_helpers import make_product


def _claim_plan(sku_id: int) -> str:
    from platform_core.orders.services import ISSUE_ORDER_SQL

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE inventory_cardkey")
        cursor.execute(
            f"""EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM inventory_cardkey WHERE sku_id = %s
                AND status = 'available' AND NOT is_loop ORDER BY {ISSUE_ORDER_SQL['oldest']}
                LIMIT 1 FOR UPDATE SKIP LOCKED""", [sku_id])
        return "\n".join(row[0] for row in cursor.fetchall())


def _sell_all_but_newest(sku, keep: int) -> None:
    # void here stands in for sold: either way the key is no longer available
    newest = CardKey.objects.filter(sku=sku).order_by("-id").values_list("id", flat=True)[keep]
    CardKey.objects.filter(sku=sku, id__lte=newest).update(status="void")


def test_allocation_reads_available_keys_of_one_sku_from_the_index(alpha):
    with tenant_context(alpha):
        sku = make_product(keys=2000)
        make_product(name="Other", keys=2000)
        _sell_all_but_newest(sku, 10)
        plan = _claim_plan(sku.pk)
    assert "cardkey_by_sku_status" in plan, plan
    assert "Sort" not in plan, plan  # keys come out in issue order straight from the index


def _import_keys(sku, count: int) -> None:
    # as an import writes them (one created_at per chunk, ciphertext-sized secrets) without
    # encrypting 60,000 keys: the plan depends on row counts, not on the secrets
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO inventory_cardkey (sku_id, product_id_copy, secret, fingerprint, status, is_loop, created_at)
               SELECT %s, %s, repeat('x', 72), md5(n::text) || md5(n::text), 'available', false, now() FROM generate_series(1, %s) n""",
            [sku.pk, sku.product_id, count])


def test_a_shop_with_one_big_product_does_not_scan_its_sold_keys(alpha):
    """With nearly every row the one SKU's, the planner reads "ORDER BY id LIMIT 1" as "walk
    the primary key, the first row will do" and walks every sold key first (measured: ~470
    claims/s instead of ~9,000). Ordering by age, which only the (sku, status, created_at,
    id) index provides, leaves it nothing else to choose."""
    with tenant_context(alpha):
        sku = make_product()
        _import_keys(sku, 60000)
        make_product(name="Small", keys=100)
        _sell_all_but_newest(sku, 50000)  # the oldest 10,000 sold
        plan = _claim_plan(sku.pk)
    assert "cardkey_by_sku_status" in plan, plan
    assert "Rows Removed by Filter" not in plan, plan


PLANS = {  # planner settings that make PostgreSQL pick each way of running "id IN (subquery)"
    "hash": [],
    "nested_loop": ["enable_hashjoin", "enable_mergejoin", "enable_hashagg", "enable_material", "enable_sort"],
    "merge": ["enable_hashjoin", "enable_nestloop", "enable_hashagg"],
}


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_each_allocation_takes_exactly_what_was_asked_whatever_the_plan(alpha, plan):
    """A rescanned ``IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`` skips the rows the same
    statement just updated and hands out the next ones, so one order could take all stock
    when statistics steer the planner to a nested loop. The pick must run exactly once."""
    from platform_core.orders import services
    from platform_core.orders.services import LineRequest

    with tenant_context(alpha):
        sku = make_product(keys=12)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE inventory_cardkey")
            for setting in PLANS[plan]:
                cursor.execute(f"SET {setting} = off")
        try:
            first = services.order_place(lines=[LineRequest(sku.pk, 1)], contact="a@example.com",
                                         query_password="1234")
            second = services.order_place(lines=[LineRequest(sku.pk, 2)], contact="b@example.com",
                                          query_password="1234")
        finally:
            with connection.cursor() as cursor:
                for setting in PLANS[plan]:
                    cursor.execute(f"RESET {setting}")
        assert CardKey.objects.filter(order_line__order=first, status="reserved").count() == 1
        assert CardKey.objects.filter(order_line__order=second, status="reserved").count() == 2
        assert CardKey.objects.filter(sku=sku, status="available").count() == 9
        sku.refresh_from_db()
        assert (sku.available_count, sku.reserved_count) == (9, 3)


@pytest.mark.parametrize("issue_order, wanted", [("oldest", 0), ("newest", -1)])
def test_keys_are_issued_by_age_in_the_skus_issue_order(alpha, issue_order, wanted):
    """Each import gives its keys one timestamp; within an import, file order decides."""
    import datetime

    from django.utils import timezone

    from platform_core.orders import services

    with tenant_context(alpha):
        sku = make_product(keys=6)
        sku.issue_order = issue_order
        sku.save(update_fields=["issue_order"])
        keys = list(CardKey.objects.filter(sku=sku).order_by("id"))
        earlier = timezone.now() - datetime.timedelta(days=1)
        CardKey.objects.filter(pk__in=[key.pk for key in keys[:3]]).update(created_at=earlier)
        CardKey.objects.filter(pk__in=[key.pk for key in keys[3:]]).update(created_at=timezone.now())
        order = services.order_place(lines=[services.LineRequest(sku.pk, 1)], contact="a@example.com",
                                     query_password="1234")
        reserved = CardKey.objects.get(order_line__order=order)
    # oldest: the first import's first key; newest: the second import's last key
    assert reserved.pk == keys[wanted].pk


def test_the_key_claim_is_planned_once_per_connection_not_once_per_order(alpha):
    """A prepared statement is planned afresh on every run while PostgreSQL prefers custom
    plans, and it did for the claim while its LIMIT was a parameter: a generic plan had to
    guess how many keys a "LIMIT $n" takes, so each order paid for planning the statement
    (measured: half a millisecond of the database's CPU, more than running it). With the
    quantity written into the statement the generic plan is as good as a custom one, and
    after PostgreSQL's five trial custom plans every order runs the plan made once."""
    from platform_core.inventory.stock import recount
    from platform_core.orders import services

    with tenant_context(alpha):
        sku = make_product()
        _import_keys(sku, 60000)  # a shop's big product beside a small one, as in a flash sale
        recount(sku.pk)
        make_product(name="Small", keys=100)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE inventory_cardkey")
        for n in range(16):  # psycopg prepares after 5 runs; PostgreSQL then tries 5 custom plans
            services.order_place(lines=[services.LineRequest(sku.pk, 1)], contact=f"p{n}@example.com",
                                 query_password="1234")
        with connection.cursor() as cursor:
            cursor.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                           "WHERE statement LIKE '%%picked AS MATERIALIZED%%'")
            plans = cursor.fetchall()
    assert plans, "the claim statement was never prepared"
    generic, custom = plans[0]
    assert generic >= 1 and custom <= 5, plans
