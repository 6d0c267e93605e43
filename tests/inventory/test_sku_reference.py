"""A card key always belongs to an existing SKU, although the reference is checked per
statement by triggers instead of a per-row foreign key (decision 0037)."""
from __future__ import annotations

import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction
from django_tenants.utils import tenant_context

from platform_core.catalog.models import SKU
from platform_core.inventory.models import CardKey
from tests.orders.test_concurrency import committed_alpha  # noqa: F401 - fixture
from tests.parallel import all_at_once

GUARD_TRIGGERS = {("inventory_cardkey", "cardkey_sku_exists"), ("inventory_cardkey", "cardkey_sku_fixed"),
                  ("catalog_sku", "sku_without_keys")}


def _add_key(sku_id, secret="K-1"):
    return CardKey.objects.create(sku_id=sku_id, product_id_copy=1, secret=secret, fingerprint=secret)


def _check_deferred_now():
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_a_key_for_a_sku_that_does_not_exist_is_refused(sku):
    with pytest.raises(IntegrityError, match="the SKU does not exist"), transaction.atomic():
        _add_key(sku.pk + 100_000)
    assert not CardKey.objects.exists()


def test_one_missing_sku_fails_a_whole_multi_row_insert(sku):
    rows = [CardKey(sku_id=sku.pk, product_id_copy=1, secret="A", fingerprint="A"),
            CardKey(sku_id=sku.pk + 100_000, product_id_copy=1, secret="B", fingerprint="B")]
    with pytest.raises(IntegrityError), transaction.atomic():
        CardKey.objects.bulk_create(rows)
    assert not CardKey.objects.exists()


def test_a_key_cannot_move_to_another_sku(sku, product):
    other = SKU.objects.create(product=product, name="90 days", price=2500)
    key = _add_key(sku.pk)
    with pytest.raises(IntegrityError, match="cannot move"), transaction.atomic():
        CardKey.objects.filter(pk=key.pk).update(sku_id=other.pk)
    key.refresh_from_db()
    assert key.sku_id == sku.pk
    CardKey.objects.filter(pk=key.pk).update(status=CardKey.Status.VOID)  # other columns change freely


def test_deleting_a_sku_that_still_has_keys_fails(sku):
    _add_key(sku.pk)
    with pytest.raises(IntegrityError, match="still has card keys"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM catalog_sku WHERE id = %s", [sku.pk])
        _check_deferred_now()
    assert SKU.objects.filter(pk=sku.pk).exists()


def test_deleting_a_sku_through_the_console_models_takes_its_unsold_keys_along(sku):
    _add_key(sku.pk)
    with transaction.atomic():
        sku.delete()
        _check_deferred_now()
    assert not CardKey.objects.exists()


def test_truncating_skus_never_leaves_their_keys_behind(sku):
    """No foreign key from keys to SKUs any more, but SKUs are referenced by order lines and
    order lines by keys: TRUNCATE refuses, or with CASCADE takes the keys along."""
    from django.db import NotSupportedError

    _add_key(sku.pk)
    _check_deferred_now()  # TRUNCATE refuses tables with checks still pending
    with pytest.raises(NotSupportedError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE catalog_sku")
    assert CardKey.objects.filter(sku=sku).exists()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE catalog_sku CASCADE")
    assert not CardKey.objects.exists()


def test_skus_are_deleted_only_under_read_committed(committed_alpha):  # noqa: F811
    """Under a snapshot level the check could miss keys committed meanwhile: refused."""
    from django.db import NotSupportedError

    from tests.commerce_helpers import make_product

    sku = make_product(name="Snapshot")
    with pytest.raises(NotSupportedError, match="READ COMMITTED"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("DELETE FROM catalog_sku WHERE id = %s", [sku.pk])
    assert SKU.objects.filter(pk=sku.pk).exists()
    with transaction.atomic():  # the same delete under READ COMMITTED
        SKU.objects.filter(pk=sku.pk).delete()
    assert not SKU.objects.filter(pk=sku.pk).exists()


def test_every_shop_schema_has_the_guards(alpha, bravo):
    """Migrated shops and shops cloned from the template alike."""
    for shop in (alpha, bravo):
        with connection.cursor() as cursor:
            cursor.execute("""SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                              WHERE c.relnamespace = %s::regnamespace AND NOT t.tgisinternal""", [shop.schema_name])
            assert GUARD_TRIGGERS <= set(cursor.fetchall()), shop.slug


def test_a_sku_deleted_while_keys_are_added_never_leaves_orphan_keys(committed_alpha):  # noqa: F811
    """An insert and a delete of its SKU at the same time: one of them fails, and no key
    is left pointing at a SKU that is gone — in either order."""
    from tests.commerce_helpers import make_product

    for first in ("insert", "delete"):
        sku = make_product(name=f"Race {first}")
        started = threading.Event()

        def work(n, sku_id=sku.pk, first=first, started=started):
            from tenants.models import Shop

            with tenant_context(Shop.objects.get(slug="alpha")), transaction.atomic():
                mine = "insert" if n == 0 else "delete"
                if mine != first:
                    started.wait(10)
                if mine == "insert":
                    _add_key(sku_id, secret=f"RACE-{sku_id}")
                else:
                    with connection.cursor() as cursor:
                        cursor.execute("DELETE FROM catalog_sku WHERE id = %s", [sku_id])
                if mine == first:
                    started.set()
                    time.sleep(0.3)  # the other one now waits on this transaction
                return mine

        results = all_at_once(2, work)
        failures = [r for r in results if isinstance(r, Exception)]
        assert len(failures) == 1 and isinstance(failures[0], IntegrityError), (first, results)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM inventory_cardkey k WHERE NOT EXISTS "
                           "(SELECT 1 FROM catalog_sku s WHERE s.id = k.sku_id)")
            assert cursor.fetchone()[0] == 0, first
