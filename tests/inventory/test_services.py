"""Low-stock alert, reveal, void and export: audited, counters kept, staff refused."""
from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from platform_core.audit.models import AuditEvent
from platform_core.inventory.models import CardKey
from platform_core.inventory.services import (key_reveal, keys_export_unsold, keys_void, stock_check_low,
                                              stock_rearm_low_alert)
from platform_core.inventory.stock import adjust_counts, recount
from platform_core.notices.models import Notice, OutboundEvent
from tests.inventory.conftest import counters


@pytest.fixture
def staff_member(alpha):
    from tenants.models import Merchant, ShopMembership

    merchant = Merchant.objects.create_user("stan@example.com", "pw-stan-12345", name="Stan")
    ShopMembership.objects.create(shop=alpha, merchant=merchant, role=ShopMembership.Role.STAFF)
    return merchant


@pytest.fixture
def admin_member(alpha):
    from tenants.models import Merchant, ShopMembership

    merchant = Merchant.objects.create_user("ada@example.com", "pw-ada-12345", name="Ada")
    ShopMembership.objects.create(shop=alpha, merchant=merchant, role=ShopMembership.Role.ADMIN)
    return merchant


def sell(sku, count):
    """What allocation does: keys leave 'available', the counters follow, then the check."""
    adjust_counts(sku.pk, available=-count, sold=count)
    return stock_check_low(sku)


# --- low stock -----------------------------------------------------------------------

def test_low_stock_alerts_once_per_crossing(importer, sku, product, admin_member, mailoutbox,
                                            django_capture_on_commit_callbacks):
    product.low_stock_threshold = 3
    product.save()
    importer("".join(f"K{n}\n" for n in range(6)))

    with django_capture_on_commit_callbacks(execute=True):
        assert sell(sku, 2) is False           # 4 left: above the threshold
        assert sell(sku, 1) is True            # 3 left: crossed
        assert sell(sku, 1) is False           # 2 left: already alerted
        assert sell(sku, 2) is False           # 0 left: still the same crossing
    assert Notice.objects.filter(kind="low_stock").count() == 1
    event = OutboundEvent.objects.get(kind="stock.low")
    assert event.payload == {"sku": {"id": sku.pk, "name": sku.name},
                             "product": {"id": product.pk, "name": product.name}, "available": 3, "threshold": 3}
    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == ["ada@example.com", "alice@example.com"]
    assert "Low stock" in mailoutbox[0].subject and "3 key(s) left" in mailoutbox[0].body

    # stock comes back above the threshold (import re-arms), then crosses again: one more alert
    importer("".join(f"NEW{n}\n" for n in range(5)))
    sku.refresh_from_db()
    assert sku.low_stock_alerted is False and sku.available_count == 5
    with django_capture_on_commit_callbacks(execute=True):
        assert sell(sku, 1) is False
        assert sell(sku, 1) is True
    assert Notice.objects.filter(kind="low_stock").count() == 2
    assert OutboundEvent.objects.filter(kind="stock.low").count() == 2
    assert len(mailoutbox) == 2


def test_an_import_that_stays_low_does_not_rearm(importer, sku, product):
    product.low_stock_threshold = 10
    product.save()
    importer("K1\nK2\n")
    sku.refresh_from_db()
    assert stock_check_low(sku) is True
    importer("K3\n")
    sku.refresh_from_db()
    assert sku.low_stock_alerted is True and stock_check_low(sku) is False


def test_no_threshold_no_alert(importer, sku, mailoutbox, django_capture_on_commit_callbacks):
    importer("K1\n")
    with django_capture_on_commit_callbacks(execute=True):
        assert sell(sku, 1) is False
    assert not Notice.objects.exists() and not mailoutbox


def test_rearm_only_above_the_threshold(sku, product):
    product.low_stock_threshold = 2
    product.save()
    sku.low_stock_alerted = True
    sku.available_count = 2
    sku.save()
    assert stock_rearm_low_alert(sku) is False
    sku.available_count = 3
    sku.save()
    assert stock_rearm_low_alert(sku) is True


# --- reveal, void, export ------------------------------------------------------------

def test_reveal_is_audited_and_refused_for_staff(importer, sku, in_alpha, alice, staff_member):
    importer("REVEAL-ME\n")
    key = CardKey.objects.get(sku=sku)
    assert key_reveal(shop=in_alpha, key=key, actor=alice) == "REVEAL-ME"
    event = AuditEvent.objects.get(action="cardkey.revealed")
    assert (event.actor_email, event.target_type, event.target_id) == (alice.email, "CardKey", str(key.pk))
    assert "REVEAL-ME" not in str(event.data)
    with pytest.raises(PermissionDenied):
        key_reveal(shop=in_alpha, key=key, actor=staff_member)
    with pytest.raises(PermissionDenied):
        key_reveal(shop=in_alpha, key=key, actor=None)
    assert AuditEvent.objects.filter(action="cardkey.revealed").count() == 1


def test_void_only_available_keys_and_counters_follow(importer, sku, in_alpha, alice, product,
                                                     django_capture_on_commit_callbacks):
    from platform_core.orders.models import Order, OrderLine

    importer("V1\nV2\nV3\nV4\n")
    keys = list(CardKey.objects.filter(sku=sku).order_by("id"))
    order = Order.objects.create(number="T-1", contact="buyer@example.com", subtotal=100, total=100,
                                 access_token="t" * 43)
    line = OrderLine.objects.create(order=order, sku=sku, product_type="card_key", title="x", quantity=1,
                                    unit_price=100, total=100)
    CardKey.objects.filter(pk=keys[0].pk).update(status="sold", order_line=line)
    adjust_counts(sku.pk, available=-1, sold=1)

    voided = keys_void(shop=in_alpha, key_ids=[keys[0].pk, keys[1].pk, keys[2].pk], actor=alice, reason="leaked")
    assert voided == 2  # the sold one stays sold
    assert keys_void(shop=in_alpha, key_ids=[keys[1].pk], actor=alice) == 0  # already void
    assert list(CardKey.objects.filter(sku=sku).order_by("id").values_list("status", flat=True)) == [
        "sold", "void", "void", "available"]
    assert counters(sku) == {"available": 1, "reserved": 0, "sold": 1} == recount(sku.pk)
    event = AuditEvent.objects.get(action="cardkey.voided")
    assert event.data["count"] == 2 and event.reason == "leaked" and event.actor_email == alice.email


def test_void_can_raise_the_low_stock_alert(importer, sku, in_alpha, alice, product):
    product.low_stock_threshold = 1
    product.save()
    importer("A\nB\n")
    keys_void(shop=in_alpha, key_ids=CardKey.objects.filter(sku=sku).values_list("pk", flat=True)[:1], actor=alice)
    sku.refresh_from_db()
    assert sku.low_stock_alerted and Notice.objects.filter(kind="low_stock").count() == 1


def test_void_and_export_refused_for_staff(importer, sku, in_alpha, staff_member):
    importer("S1\n")
    key = CardKey.objects.get(sku=sku)
    with pytest.raises(PermissionDenied):
        keys_void(shop=in_alpha, key_ids=[key.pk], actor=staff_member)
    with pytest.raises(PermissionDenied):
        keys_export_unsold(shop=in_alpha, sku=sku, actor=staff_member)
    assert CardKey.objects.get(pk=key.pk).status == "available"
    assert not AuditEvent.objects.filter(action__in=["cardkey.voided", "cardkey.exported"]).exists()


def test_export_unsold_is_audited_and_streams_available_keys_oldest_first(importer, sku, in_alpha, admin_member):
    importer("E1\nE2\nE3\n")
    keys_void(shop=in_alpha, key_ids=CardKey.objects.filter(sku=sku).order_by("id").values_list("pk", flat=True)[1:2],
              actor=admin_member)
    exported = keys_export_unsold(shop=in_alpha, sku=sku, actor=admin_member)
    event = AuditEvent.objects.get(action="cardkey.exported")  # recorded before a single key is read
    assert event.data == {"sku_id": sku.pk, "count": 2} and event.actor_email == admin_member.email
    assert list(exported) == ["E1", "E3"]
