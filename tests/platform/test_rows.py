"""The compiled-once row helpers write and read exactly what the ORM does."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from platform_core.db.rows import insert_row, insert_rows, remember_related, select_row, select_rows, update_row
from platform_core.orders.models import Order, OrderEvent
from platform_core.payments.models import WebhookEvent


@pytest.fixture
def shop(alpha):
    with tenant_context(alpha):
        yield alpha


def _order(number: str, **fields) -> Order:
    return Order(number=number, contact="b@example.com", subtotal=100, total=100, access_token=f"tok-{number}",
                 **fields)


def test_an_inserted_row_reads_back_equal_through_the_orm(shop):
    until = timezone.now() + timedelta(minutes=15)
    order = _order("R1", ip="192.0.2.7", reserved_until=until, idempotency_key="api:x")
    assert insert_row(order) is True and order.pk
    stored = Order.objects.get(pk=order.pk)
    assert (stored.number, stored.ip, stored.reserved_until, stored.idempotency_key, stored.status) == \
        ("R1", "192.0.2.7", until, "api:x", "pending_payment")
    event = OrderEvent(order=order, kind="order.created", data={"lines": [1, 2], "note": "中文"})
    insert_row(event)
    assert OrderEvent.objects.get(pk=event.pk).data == {"lines": [1, 2], "note": "中文"}
    # and the select helper converts like a queryset (JSON decoded, datetimes aware)
    read = select_row(OrderEvent, "id = %s", [event.pk])
    assert read.data == {"lines": [1, 2], "note": "中文"} and read.created_at.tzinfo is not None
    assert read.order_id == order.pk and not read._state.adding


def test_a_conflicting_insert_writes_nothing_and_says_so(shop):
    insert_row(_order("R2", idempotency_key="api:same"))
    again = _order("R3", idempotency_key="api:same")
    assert insert_row(again, ignore_conflicts=True) is False and again.pk is None
    assert not Order.objects.filter(number="R3").exists()
    with pytest.raises(IntegrityError), transaction.atomic():  # without ignore_conflicts the constraint speaks
        insert_row(_order("R4", idempotency_key="api:same"))


def test_several_rows_get_their_own_keys_in_order(shop):
    order = _order("R5")
    insert_row(order)
    events = [OrderEvent(order=order, kind=f"k{n}") for n in range(5)]
    insert_rows(events)
    assert [OrderEvent.objects.get(pk=e.pk).kind for e in events] == [f"k{n}" for n in range(5)]


def test_update_row_changes_only_the_named_fields(shop):
    order = _order("R6")
    insert_row(order)
    Order.objects.filter(pk=order.pk).update(contact="changed@example.com")  # someone else's change
    order.status, order.paid_at = "paid", timezone.now()
    update_row(order, ["status", "paid_at"])
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.paid_at, stored.contact) == ("paid", order.paid_at, "changed@example.com")


def test_select_rows_filters_orders_and_finds_nothing_cleanly(shop):
    for n in (3, 1, 2):
        insert_row(_order(f"S{n}"))
    numbers = [o.number for o in select_rows(Order, "number LIKE %s", ["S%"], suffix="ORDER BY number DESC")]
    assert numbers == ["S3", "S2", "S1"]
    assert select_row(Order, "number = %s", ["nope"]) is None
    inbox = WebhookEvent(provider="sandbox", event_id="e1", kind="payment.succeeded", payload={"a": 1})
    insert_row(inbox)
    assert select_row(WebhookEvent, "id = %s", [inbox.pk]).payload == {"a": 1}


def test_remembered_rows_answer_all_but_filters_still_query(shop):
    order = _order("R7")
    insert_row(order)
    stored = OrderEvent(order=order, kind="order.created")
    insert_row(stored)
    shown = Order.objects.get(pk=order.pk)
    remember_related(shown, events=[OrderEvent(order=shown, kind="in hand")])
    assert [e.kind for e in shown.events.all()] == ["in hand"]
    assert [e.kind for e in shown.events.filter(kind="order.created")] == ["order.created"]
