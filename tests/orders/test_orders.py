"""Checkout, reservation, the state machine, delivery exactly once."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from platform_core.catalog.models import SKU, Product, WholesalePrice
from platform_core.inventory.models import CardKey, DeliveredKey
from platform_core.inventory.stock import recount
from platform_core.orders import services
from platform_core.orders.models import Order, OrderEvent
from platform_core.orders.services import LineRequest, OrderError
from tests.commerce_helpers import add_keys, make_product, pay


def place(sku, quantity=1, contact="buyer@example.com", **kwargs):
    return services.order_place(lines=[LineRequest(sku.pk, quantity)], contact=contact, query_password="1234",
                                **kwargs)


def test_place_reserves_and_pay_delivers_keys(shop):
    sku = make_product(keys=5, price=1500)
    order = place(sku, 2)
    assert order.status == "pending_payment" and order.total == 3000
    sku.refresh_from_db()
    assert (sku.available_count, sku.reserved_count, sku.sold_count) == (3, 2, 0)
    assert pay(order) == "paid"
    order.refresh_from_db()
    assert order.status == "delivered"
    items = services.order_delivered_items(order)
    assert len(items) == 2 and all(item.secret.startswith(f"KEY-{sku.pk}-") for item in items)
    sku.refresh_from_db()
    assert (sku.available_count, sku.reserved_count, sku.sold_count) == (3, 0, 2)
    assert recount(sku.pk) == {"available": 3, "reserved": 0, "sold": 2}
    assert list(order.events.values_list("kind", flat=True)) == ["order.created", "order.paid", "order.delivered"]


def test_wholesale_price_applies_from_its_quantity(shop):
    sku = make_product(keys=20, price=1000)
    WholesalePrice.objects.create(sku=sku, min_quantity=10, unit_price=900)
    assert place(sku, 9).total == 9000
    assert place(sku, 10, contact="other@example.com").total == 9000


@pytest.mark.parametrize("quantity", [0, -1, 101, 10**9, "3", 2.5, True])
def test_bad_quantities_are_refused(shop, quantity):
    sku = make_product(keys=5)
    with pytest.raises(OrderError) as error:
        services.order_place(lines=[LineRequest(sku.pk, quantity)], contact="b@example.com", query_password="1234")
    assert error.value.field == "quantity"
    assert not Order.objects.exists()
    sku.refresh_from_db()
    assert sku.available_count == 5 and sku.reserved_count == 0


def test_sold_out_refuses_and_leaves_no_half_order(shop):
    sku = make_product(keys=2)
    with pytest.raises(OrderError, match="Only 2 left"):
        place(sku, 3)
    assert not Order.objects.exists()
    sku.refresh_from_db()
    assert (sku.available_count, sku.reserved_count) == (2, 0)
    assert CardKey.objects.filter(status="reserved").count() == 0


def test_a_sku_without_keys_is_refused_before_any_lock_or_write(shop):
    """After a flash sale sells out, every further checkout is answered from the SKU's
    counter: no transaction, no open-order lock, nothing written."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sku = make_product(keys=1)
    pay(place(sku, contact="first@example.com"))
    with CaptureQueriesContext(connection) as statements, pytest.raises(OrderError, match="Sold out") as error:
        place(sku, contact="late@example.com")
    assert (error.value.code, error.value.status, error.value.field) == ("out_of_stock", 409, "quantity")
    sql = " ".join(q["sql"] for q in statements.captured_queries)
    assert "pg_advisory_xact_lock" not in sql and "INSERT" not in sql and "SAVEPOINT" not in sql
    assert Order.objects.filter(contact="late@example.com").count() == 0
    add_keys(sku, ["RESTOCKED-1"])  # restocked: sells again
    assert place(sku, contact="late@example.com").status == "pending_payment"


@pytest.mark.parametrize("contact, password, field", [
    ("not a contact", "1234", "contact"),
    ("buyer@example", "1234", "contact"),
    ("buyer@example.com", "12", "query_password"),
])
def test_contact_and_query_password_are_validated(shop, contact, password, field):
    sku = make_product(keys=1)
    with pytest.raises(OrderError) as error:
        services.order_place(lines=[LineRequest(sku.pk, 1)], contact=contact, query_password=password)
    assert error.value.field == field


def test_product_of_another_shop_is_not_found(alpha, bravo):
    with tenant_context(bravo):
        foreign = make_product(keys=1)
    with tenant_context(alpha):
        with pytest.raises(OrderError) as error:
            place(foreign)
        assert error.value.status == 404


def test_hidden_products_and_member_only_items(shop):
    hidden = make_product(keys=1, is_visible=False)
    members = make_product(keys=1, member_only=True)
    with pytest.raises(OrderError, match="not available"):
        place(hidden)
    with pytest.raises(OrderError, match="Sign in as a member"):
        place(members)


def test_topup_account_is_validated_by_the_products_pattern(shop):
    product = Product.objects.create(name="Phone credit", type=Product.Type.TOPUP, account_pattern=r"1[3-9]\d{9}",
                                     account_label="Phone number")
    sku = SKU.objects.create(product=product, price=5000)
    with pytest.raises(OrderError, match="valid Phone number"):
        services.order_place(lines=[LineRequest(sku.pk, 1, "12345")], contact="b@example.com", query_password="1234")
    order = services.order_place(lines=[LineRequest(sku.pk, 1, "13800138000")], contact="b@example.com",
                                 query_password="1234")
    pay(order)
    order.refresh_from_db()
    assert order.status == "processing"
    line = order.lines.get()
    services.line_mark_delivered(line=line, note="Credited 50 CNY, ref 77", actor="staff@example.com")
    order.refresh_from_db()
    assert order.status == "delivered"
    assert services.order_delivered_items(order)[0].secret == "Credited 50 CNY, ref 77"


def test_open_unpaid_orders_are_limited_per_contact_and_ip(shop):
    sku = make_product(keys=30)
    for _ in range(3):
        place(sku, contact="hoarder@example.com")
    with pytest.raises(OrderError) as error:
        place(sku, contact="hoarder@example.com")
    assert error.value.status == 429
    for n in range(10):
        place(sku, contact=f"b{n}@example.com", ip="203.0.113.9")
    with pytest.raises(OrderError, match="your network"):
        place(sku, contact="fresh@example.com", ip="203.0.113.9")
    # a refused order leaves nothing behind: no order, no reserved key
    assert Order.objects.filter(contact="hoarder@example.com").count() == 3
    assert not Order.objects.filter(contact="fresh@example.com").exists()
    sku.refresh_from_db()
    assert (sku.available_count, sku.reserved_count) == (30 - 13, 13)



def test_orders_without_a_network_address_are_not_limited_per_network(shop):
    from platform_core.orders.models import OrderSettings

    OrderSettings.objects.create(max_open_orders_per_ip=1)
    sku = make_product(keys=5)
    for n in range(3):  # API orders carry no address: only the contact limit applies
        place(sku, contact=f"api{n}@example.com")
    place(sku, contact="web1@example.com", ip="198.51.100.4")
    with pytest.raises(OrderError, match="your network"):
        place(sku, contact="web2@example.com", ip="198.51.100.4")


def test_idempotency_key_returns_the_same_order(shop):
    sku = make_product(keys=5)
    first = place(sku, idempotency_key="abc-123")
    second = place(sku, idempotency_key="abc-123")
    assert first.pk == second.pk and Order.objects.count() == 1


def test_reservations_expire_and_keys_return_to_stock(shop):
    sku = make_product(keys=3)
    order = place(sku, 3)
    assert services.orders_expire_due(now=timezone.now()) == 0
    assert services.orders_expire_due(now=timezone.now() + timedelta(minutes=16)) == 1
    order.refresh_from_db()
    assert order.status == "expired"
    sku.refresh_from_db()
    assert (sku.available_count, sku.reserved_count) == (3, 0)
    assert place(sku, 3, contact="next@example.com").status == "pending_payment"


def test_late_payment_after_expiry_waits_for_stock_then_is_delivered_on_import(shop):
    sku = make_product(keys=1)
    late = place(sku, 1)
    services.orders_expire_due(now=timezone.now() + timedelta(minutes=16))
    other = place(sku, 1, contact="quick@example.com")
    pay(other)
    pay(late)
    late.refresh_from_db()
    assert late.status == "awaiting_stock"
    # paid and waiting, written once: the payment's fields with the new status
    assert late.paid_at is not None and late.payment_method == "test-pay" and late.delivered_at is None
    assert [e.to_status for e in late.events.order_by("id")][-2:] == ["paid", "awaiting_stock"]
    add_keys(sku, ["FRESH-1"])
    assert services.orders_fulfil_awaiting_stock(sku_id=sku.pk) == 1
    late.refresh_from_db()
    assert late.status == "delivered"
    assert services.order_delivered_items(late)[0].secret == "FRESH-1"


def test_loop_key_is_sold_to_every_buyer(shop):
    sku = make_product(loop_key="SHARED-CODE")
    orders = [place(sku, 2, contact=f"l{n}@example.com") for n in range(3)]
    for order in orders:
        pay(order)
        order.refresh_from_db()
        assert order.status == "delivered"
        assert [i.secret for i in services.order_delivered_items(order)] == ["SHARED-CODE", "SHARED-CODE"]
    assert CardKey.objects.get(sku=sku).status == "available"


def test_state_machine_refuses_illegal_transitions(shop):
    sku = make_product(keys=1)
    order = place(sku)
    with pytest.raises(OrderError, match="cannot become"):
        services.order_transition(order, "delivered", "x")
    services.order_cancel(order=order)
    order.refresh_from_db()
    assert order.status == "cancelled"
    with pytest.raises(OrderError):
        services.order_cancel(order=order)
    assert OrderEvent.objects.filter(order=order).count() == 2


def test_replayed_event_delivers_once(shop):
    sku = make_product(keys=3)
    order = place(sku, 1)
    assert pay(order, event_id="evt-1") == "paid"
    from platform_core.payments.models import Payment
    from platform_core.payments.services import record_event
    from plugins.payment import GatewayEvent

    payment = Payment.objects.get(order=order)
    again = record_event(provider="test-pay", event=GatewayEvent(
        event_id="evt-1", kind="payment.succeeded", payment_reference=str(payment.pk), amount=order.total,
        currency="CNY"))
    assert again == "duplicate"
    assert DeliveredKey.objects.filter(order_line__order=order).count() == 1


def test_amount_or_currency_mismatch_changes_nothing(shop):
    sku = make_product(keys=1, price=1000)
    order = place(sku)
    assert pay(order, amount=1) == "amount_mismatch"
    assert pay(order, currency="USD") == "amount_mismatch"
    order.refresh_from_db()
    assert order.status == "pending_payment"


def test_a_key_cannot_be_delivered_twice_in_the_database(shop):
    sku = make_product(keys=1)
    order = place(sku)
    pay(order)
    delivered = DeliveredKey.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        DeliveredKey.objects.create(order_line=delivered.order_line, card_key=delivered.card_key)


def test_order_lookup_needs_all_three(shop):
    sku = make_product(keys=1)
    order = place(sku, contact="Look@Example.com")
    assert services.order_lookup(number=order.number, contact="look@example.com", query_password="1234") == order
    assert services.order_lookup(number=order.number, contact="look@example.com", query_password="wrong") is None
    assert services.order_lookup(number=order.number, contact="x@example.com", query_password="1234") is None
    assert services.order_lookup(number="nope", contact="look@example.com", query_password="1234") is None


def test_free_items_are_delivered_without_payment(shop):
    sku = make_product(keys=2, price=0)
    order = place(sku, 1)
    assert order.status == "delivered" and order.total == 0
    assert len(services.order_delivered_items(order)) == 1


def test_abandoned_wallet_topups_expire_and_do_not_block_purchases(shop):
    from platform_core.customers.services import customer_register

    customer = customer_register(login="t@example.com", password="a-long-passphrase-1")
    for _ in range(4):
        services.wallet_topup_order(customer=customer, amount=1000)
    sku = make_product(keys=1)
    assert services.order_place(lines=[LineRequest(sku.pk, 1)], contact="t@example.com", customer=customer)
    assert services.orders_expire_due(now=timezone.now() + timedelta(minutes=16)) == 5


@pytest.mark.parametrize("language, greeting", [("zh-hans", "已发货"), ("en", "is delivered")])
def test_delivery_email_carries_the_keys_in_the_buyers_language(shop, mailoutbox, django_capture_on_commit_callbacks,
                                                                language, greeting):
    sku = make_product(keys=2)
    order = place(sku, 2, language=language)
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["buyer@example.com"]
    body = mailoutbox[0].body
    assert greeting in body and body.count(f"KEY-{sku.pk}-") == 2
    assert f"/order/{order.number}/?t={order.access_token}" in body


def test_sales_that_cross_the_low_stock_threshold_alert_once(shop, mailoutbox, django_capture_on_commit_callbacks,
                                                              monkeypatch):
    from platform_core.notices.models import Notice
    from platform_core.orders import tasks

    sku = make_product(keys=5)
    sku.product.low_stock_threshold = 2
    sku.product.save(update_fields=["low_stock_threshold"])
    checks = []
    real_delay = tasks.check_low_stock.delay
    monkeypatch.setattr(tasks.check_low_stock, "delay", lambda ids: (checks.append(list(ids)), real_delay(ids)))
    for n in range(4):  # 5 -> 4 -> 3 left: no check sent; 2 left: the alert; 1 left: already alerted
        with django_capture_on_commit_callbacks(execute=True):
            pay(place(sku, 1, contact=f"b{n}@example.com"))
    assert checks == [[sku.pk]]
    assert Notice.objects.filter(kind="low_stock").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        pay(place(sku, 1, contact="last@example.com"))
    assert checks == [[sku.pk]] and Notice.objects.filter(kind="low_stock").count() == 1


def test_importing_keys_delivers_orders_waiting_for_stock(shop, mailoutbox, django_capture_on_commit_callbacks):
    from platform_core.inventory.services import keys_import

    sku = make_product(keys=1)
    late = place(sku, 1)
    services.orders_expire_due(now=timezone.now() + timedelta(minutes=16))  # its reservation runs out
    pay(place(sku, 1, contact="quick@example.com"))  # someone else takes the last key
    pay(late)  # the late payment arrives
    late.refresh_from_db()
    assert late.status == "awaiting_stock"
    with django_capture_on_commit_callbacks(execute=True):
        batch = keys_import(shop=shop, sku=sku, source="paste", lines=["RESTOCK-1", "RESTOCK-2"])
    assert batch.imported == 2
    late.refresh_from_db()
    assert late.status == "delivered"
    assert [i.secret for i in services.order_delivered_items(late)] == ["RESTOCK-1"]
    assert any(m.to == ["buyer@example.com"] and "RESTOCK-1" in m.body for m in mailoutbox)  # the key by e-mail
    sku.refresh_from_db()
    assert (sku.available_count, sku.sold_count) == (1, 2)


def test_query_passwords_are_keyed_per_shop_and_never_stored_plain(alpha, bravo):
    from django.contrib.auth.hashers import make_password

    from platform_core.orders.query_passwords import check_query_password, hash_query_password

    with tenant_context(alpha):
        sku = make_product(keys=2)
        order = place(sku, contact="guest@example.com")  # query password "1234"
        stored = Order.objects.get(pk=order.pk).query_password
        assert stored.startswith("qp1$") and "1234" not in stored
        assert hash_query_password("1234") != stored  # salted
        assert services.order_lookup(number=order.number, contact="guest@example.com", query_password="1234") == order
        assert services.order_lookup(number=order.number, contact="guest@example.com", query_password="1235") is None
        assert not check_query_password("1234", "qp1$zz$00")  # damaged value: no match, no error
        # an order written with the previous (Django hasher) format still opens
        Order.objects.filter(pk=order.pk).update(query_password=make_password("old-pw"))
        assert services.order_lookup(number=order.number, contact="guest@example.com", query_password="old-pw") == order
    with tenant_context(bravo):  # the same stored value does not verify under another shop's key
        assert not check_query_password("1234", stored)
