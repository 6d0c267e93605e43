"""The compiled-once row helpers write and read exactly what the ORM does."""
from __future__ import annotations

import datetime
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from platform_core.db import rows
from platform_core.db.rows import (batched_writes, insert_row, insert_row_alongside, insert_rows, remember_related,
                                   select_joined, select_row, select_rows, update_row, with_held_writes)
from platform_core.orders.models import Order, OrderEvent
from platform_core.payments.models import Payment, WebhookEvent
from tests.commerce_helpers import StatementCounter


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


def test_an_insert_alongside_a_read_answers_both_and_the_read_does_not_see_the_row(shop):
    insert_row(_order("A1", idempotency_key="api:a"))
    count = "SELECT count(*) FROM orders_order WHERE contact = %s"
    new = _order("A2")
    assert insert_row_alongside(new, count, ["b@example.com"], ignore_conflicts=True) == (True, (1,))
    assert new.pk and Order.objects.get(pk=new.pk).number == "A2"
    clash = _order("A3", idempotency_key="api:a")
    assert insert_row_alongside(clash, count, ["b@example.com"], ignore_conflicts=True) == (False, (2,))
    assert clash.pk is None and not Order.objects.filter(number="A3").exists()


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


def test_remembered_rows_answer_all_but_filters_still_query(shop, monkeypatch):
    order = _order("R7")
    insert_row(order)
    stored = OrderEvent(order=order, kind="order.created")
    insert_row(stored)
    shown = Order.objects.get(pk=order.pk)
    other = _order("R8")
    insert_row(other)
    insert_row(OrderEvent(order=other, kind="order.created"))  # another order's: never in this one's
    remember_related(shown, events=[OrderEvent(order=shown, kind="in hand")])
    statements = StatementCounter(monkeypatch)
    assert [e.kind for e in shown.events.all()] == ["in hand"]
    assert (len(shown.events.all()), shown.events.count(), shown.events.exists()) == (1, 1, True)
    assert shown.events.all()[0].kind == "in hand"
    assert statements.sent == []
    assert [e.kind for e in shown.events.filter(kind="order.created")] == ["order.created"]
    assert [e.order_id for e in shown.events.order_by("id")] == [order.pk]
    remember_related(shown, events=[])
    assert not shown.events.all() and shown.events.count() == 0


# --- held writes (batched_writes) ----------------------------------------------------

def test_held_writes_go_out_together_before_the_next_read(shop, monkeypatch):
    first, second = _order("B1"), _order("B2")
    insert_rows([first, second])
    counter = StatementCounter(monkeypatch)
    with transaction.atomic(), batched_writes():
        first.status, second.status = "paid", "cancelled"
        update_row(first, ["status"])
        update_row(second, ["status"])
        insert_row(OrderEvent(order=first, kind="order.paid"), returning=False)
        assert counter.work == []  # nothing sent yet
        # the next statement of any kind sees them: they go just before it, as one
        assert Order.objects.get(pk=first.pk).status == "paid"
        assert len(counter.work) == 2 and counter.work[0].startswith("WITH held0 AS (UPDATE")
        assert OrderEvent.objects.filter(order=first, kind="order.paid").count() == 1
    assert dict(Order.objects.filter(pk__in=[first.pk, second.pk]).values_list("number", "status")) == \
        {"B1": "paid", "B2": "cancelled"}


def test_held_writes_are_sent_before_commit_and_two_writes_of_one_row_both_apply(shop, monkeypatch):
    order = _order("B3")
    insert_row(order)
    counter = StatementCounter(monkeypatch)
    with transaction.atomic(), batched_writes():
        order.status = "paid"
        update_row(order, ["status"])
        order.status, order.discount = "delivered", 5
        update_row(order, ["status", "discount"])  # the same row: the first goes out on its own
        assert len(counter.work) == 1
    assert len(counter.work) == 2  # the second at the end of the block, inside the transaction
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.discount) == ("delivered", 5)


def test_held_writes_travel_with_a_statement_only_when_it_cannot_need_them(shop, monkeypatch):
    from django.db import connection

    order = _order("M1")
    insert_row(order)
    insert_row(OrderEvent(order=order, kind="order.created"))
    counter = StatementCounter(monkeypatch)

    def one(sql, params, tables):
        with connection.cursor() as cursor:
            cursor.execute(*with_held_writes(sql, params, tables=tables))
            return cursor.fetchone()[0]

    with transaction.atomic(), batched_writes():
        order.status = "paid"
        update_row(order, ["status"])
        # a statement on another table: the held write goes in front of it, one round trip
        assert one("SELECT count(*) FROM orders_orderevent WHERE order_id = %s", [order.pk],
                   ("orders_orderevent",)) == 1
        assert len(counter.work) == 1 and counter.work[0].startswith("WITH held0 AS (UPDATE")
        # one that starts with WITH takes the held items before its own
        order.status = "cancelled"
        update_row(order, ["status"])
        assert one("WITH e AS (SELECT kind FROM orders_orderevent WHERE order_id = %s) SELECT count(*) FROM e",
                   [order.pk], ("orders_orderevent",)) == 1
        assert len(counter.work) == 2 and counter.work[1].startswith("WITH held0 AS (UPDATE")
        # one that reads the held write's table: the write goes first, on its own, and is seen
        order.status = "expired"
        update_row(order, ["status"])
        assert one("SELECT status FROM orders_order WHERE id = %s", [order.pk], ("orders_order",)) == "expired"
        assert len(counter.work) == 4
        # select_rows(independent_of_held=True) reads its own table only
        insert_row(OrderEvent(order=order, kind="order.expired"), returning=False)
        assert select_rows(Order, "id = %s", [order.pk], independent_of_held=True)[0].status == "expired"
        assert len(counter.work) == 5
    assert list(OrderEvent.objects.filter(order=order).order_by("id").values_list("kind", flat=True)) == \
        ["order.created", "order.expired"]
    assert Order.objects.get(pk=order.pk).status == "expired"


def test_held_writes_roll_back_with_their_savepoint_and_their_transaction(shop):
    order = _order("B4")
    insert_row(order)
    with transaction.atomic(), batched_writes():
        order.status = "paid"
        update_row(order, ["status"])
        try:
            with transaction.atomic():  # a savepoint: the write held before it goes first and stays
                insert_row(OrderEvent(order=order, kind="inner"), returning=False)
                raise RuntimeError("undo the inner block")
        except RuntimeError:
            pass
    assert Order.objects.get(pk=order.pk).status == "paid"
    assert not OrderEvent.objects.filter(order=order, kind="inner").exists()

    with pytest.raises(RuntimeError), transaction.atomic(), batched_writes():
        order.status = "cancelled"
        update_row(order, ["status"])
        raise RuntimeError("undo everything")
    assert Order.objects.get(pk=order.pk).status == "paid"


def test_a_held_write_that_breaks_a_constraint_fails_its_transaction(shop):
    insert_row(_order("B5", idempotency_key="api:taken"))
    order = _order("B6")
    insert_row(order)
    with pytest.raises(IntegrityError), transaction.atomic(), batched_writes():
        order.status = "paid"
        update_row(order, ["status"])
        order.idempotency_key = "api:taken"
        update_row(order, ["idempotency_key"])  # sent first by the same-row rule, refused there
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.idempotency_key) == ("pending_payment", None)


def test_batched_writes_outside_a_transaction_is_refused(shop):
    from django.db import connection

    connection.in_atomic_block = False  # as in autocommit (a test runs inside a transaction)
    try:
        with pytest.raises(RuntimeError, match="inside transaction.atomic"), batched_writes():
            pass
    finally:
        connection.in_atomic_block = True
    with pytest.raises(ValueError, match="RETURNING"):
        insert_row(_order("B7"), ignore_conflicts=True, returning=False)


def test_select_joined_reads_several_models_and_a_missing_left_join_as_none(shop):
    order = _order("J1")
    insert_row(order)
    payment = Payment(order=order, provider="sandbox", amount=100, currency="CNY")
    insert_row(payment)
    lonely = _order("J2")
    insert_row(lonely)
    joins = "LEFT JOIN payments_payment t1 ON t1.order_id = t0.id"
    found_order, found_payment, doubled = select_joined((Order, Payment), joins, "t0.id = %s", [2, order.pk],
                                                        extra=("t0.total * %s",))
    assert (found_order.number, found_payment.pk, found_payment.order_id, doubled) == ("J1", payment.pk, order.pk, 200)
    assert found_payment.created_at.tzinfo is not None and found_payment.data == {}
    assert select_joined((Order, Payment), joins, "t0.id = %s", [lonely.pk])[1] is None
    assert select_joined((Order, Payment), joins, "t0.id = %s", [-1]) is None


def test_an_insert_with_a_locked_joined_read_answers_all_three_in_one_statement(shop, monkeypatch):
    order = _order("L1")
    insert_row(order)
    payment = Payment(order=order, provider="sandbox", amount=100, currency="CNY")
    insert_row(payment)
    joined = ((Order, Payment), "JOIN payments_payment t1 ON t1.order_id = t0.id")
    statements = StatementCounter(monkeypatch)
    with transaction.atomic():
        inbox = WebhookEvent(provider="sandbox", account="main", event_id="evt_L1", kind="payment.succeeded")
        written, read, found = rows.insert_row_locking_joined(
            inbox, "SELECT current_setting('lock_timeout'), %s::int", [7], *joined, "t1.id = %s", [payment.pk],
            suffix="ORDER BY t1.id LIMIT 1 FOR UPDATE", ignore_conflicts=True)
        assert len(statements.work) == 1
        assert written and inbox.pk and WebhookEvent.objects.get(pk=inbox.pk).event_id == "evt_L1"
        assert read[1] == 7
        found_order, found_payment = found
        assert (found_order.pk, found_payment.pk, found_payment.order_id) == (order.pk, payment.pk, order.pk)
        # the same event again: not written; a payment that is not there: nothing found
        again = WebhookEvent(provider="sandbox", account="main", event_id="evt_L1", kind="payment.succeeded")
        written, _, found = rows.insert_row_locking_joined(again, "SELECT 1", [], *joined, "t1.id = %s", [-1],
                                                           ignore_conflicts=True)
        assert (written, again.pk, found) == (False, None, None)


def test_a_read_row_is_the_instance_the_orm_would_make(shop):
    from django.db.models import signals

    from platform_core.catalog.models import SKU, Product

    insert_row(_order("L1", ip="192.0.2.9", idempotency_key="api:l1"))
    mine = select_row(Order, "number = %s", ["L1"])
    theirs = Order.objects.get(number="L1")
    assert type(mine) is Order and mine == theirs
    assert {f.attname: getattr(mine, f.attname) for f in Order._meta.concrete_fields} == \
        {f.attname: getattr(theirs, f.attname) for f in Order._meta.concrete_fields}
    assert (mine._state.adding, mine._state.db) == (False, "default")
    mine.contact = "saved@example.com"  # it saves as an ORM instance does: an update, not an insert
    mine.save(update_fields=["contact"])
    assert Order.objects.get(number="L1").contact == "saved@example.com" and Order.objects.count() == 1
    # a model someone listens on is still made by its own __init__, signals sent
    product = Product.objects.create(name="Listened")
    sku = SKU.objects.create(product=product, name="x", price=100)
    made = []

    def listener(sender, instance, **kwargs):
        made.append(instance)

    signals.post_init.connect(listener, sender=SKU)
    try:
        rows._made_plainly.cache_clear()
        found = select_row(SKU, "id = %s", [sku.pk])
    finally:
        signals.post_init.disconnect(listener, sender=SKU)
        rows._made_plainly.cache_clear()
    assert made == [found] and found.product_id == product.pk


def test_a_new_row_is_the_instance_the_model_would_make(shop):
    from platform_core.catalog.models import SKU, Product
    from platform_core.orders.models import OrderLine, PendingOrderEmail
    from platform_core.payments.models import Payment

    order = _order("N1")
    insert_row(order)
    product = Product.objects.create(name="Made")
    sku = SKU.objects.create(product=product, name="x", price=100)
    cases = [
        (Order, {"number": "N2", "contact": "n@example.com", "subtotal": 5, "total": 5, "access_token": "t",
                 "customer": None, "reserved_until": timezone.now()}),
        (OrderLine, {"order": order, "sku": sku, "product_type": "card_key", "title": "x", "quantity": 1,
                     "unit_price": 100, "total": 100}),
        (OrderEvent, {"order": order, "kind": "order.created", "data": {"a": 1}}),
        (Payment, {"order": order, "provider": "sandbox", "amount": 100, "currency": "CNY"}),
        (PendingOrderEmail, {"order_id": order.pk}),
    ]
    for model, values in cases:
        ours, theirs = rows.new_row(model, **values), model(**values)
        fields = model._meta.concrete_fields
        made = {f.attname: getattr(ours, f.attname) for f in fields}
        expected = {f.attname: getattr(theirs, f.attname) for f in fields}
        for name in ("created_at", "received_at", "queued_at"):  # timezone.now() defaults: made apart
            if made.get(name) is not None and name not in values:
                assert abs(made.pop(name) - expected.pop(name)) < timedelta(seconds=5)
        assert made == expected, model
        assert ours._state.adding and ours._state.db is None
        for field in fields:
            if field.is_relation and field.name in values:  # the related object in hand, as after model(...)
                assert getattr(ours, field.name) is values[field.name]
    line = rows.new_row(OrderLine, order=order, sku=sku, product_type="card_key", title="x", quantity=1,
                        unit_price=100, total=100)
    insert_rows([line])
    assert OrderLine.objects.get(pk=line.pk).sku_id == sku.pk
    with pytest.raises(TypeError, match="colour"):
        rows.new_row(OrderEvent, order=order, colour="red")


def test_keys_taken_in_advance_let_the_rows_insert_wait_for_the_next_statement(shop, monkeypatch):
    order = _order("K1")
    insert_row(order)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {rows.new_keys_sql(OrderEvent)}", [2])
        keys = cursor.fetchone()[0]
    assert len(set(keys)) == 2 and all(isinstance(key, int) for key in keys)
    statements = StatementCounter(monkeypatch)
    with transaction.atomic(), batched_writes():
        events = [rows.new_row(OrderEvent, id=key, order=order, kind=f"k{n}") for n, key in enumerate(keys)]
        insert_rows(events, keyed=True)
        assert statements.work == [] and [e.pk for e in events] == keys and not events[0]._state.adding
        assert [e.kind for e in select_rows(OrderEvent, "order_id = %s", [order.pk], suffix="ORDER BY id")] == \
            ["k0", "k1"]  # a read of the same table sends them first
    assert len(statements.work) == 2
    # a key taken is never handed out again by the table's own default
    later = OrderEvent.objects.create(order=order, kind="later")
    assert later.pk > max(keys)


def _every_concrete_field():
    from django.apps import apps

    return [(model, field) for model in apps.get_models() for field in model._meta.concrete_fields]


@pytest.mark.parametrize("value", [0, 7, -3, 2**40, "", "中文 x", True, False, None,
                                   datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc),
                                   datetime.datetime(2026, 12, 6, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))])
def test_values_prepared_directly_are_exactly_what_each_field_would_prepare(value):
    # every field of every model whose values the plan prepares itself: the field's own
    # path answers the same value, of the same type (psycopg's Int4/Int8 wrappers
    # included: they fix the parameters' types)
    checked = 0
    for model, field in _every_concrete_field():
        plan = rows._value_plan((field,))
        if plan[0][2] is None or not (value is None or type(value) is plan[0][2]):
            continue
        instance = model.__new__(model)
        instance.__dict__[field.attname] = value
        (prepared,) = rows._db_values(plan, instance, False)
        expected = field.get_db_prep_save(value, connection)
        assert prepared == expected and type(prepared) is type(expected), (model, field.name)
        checked += 1
    assert checked > 20


def test_values_of_other_kinds_and_fields_that_convert_go_through_the_field(shop):
    from django.db import models

    kinds = {f.name: rows._value_plan((f,))[0][2] for f in Order._meta.concrete_fields}
    assert (kinds["id"], kinds["total"], kinds["number"], kinds["customer"]) == (int, int, str, int)
    assert kinds["reserved_until"] is kinds["created_at"] is datetime.datetime  # the aware ones
    # JSON and network addresses are always prepared by their fields
    assert kinds["ip"] is None
    assert rows._value_plan((OrderEvent._meta.get_field("data"),))[0][2] is None

    class Shouting(models.CharField):
        def to_python(self, value):
            return None if value is None else str(value).upper()

    class Labelled(models.IntegerField):
        def get_prep_value(self, value):
            return 0 if value is None else int(value) + 1

    for custom in (Shouting(max_length=5), Labelled()):
        custom.set_attributes_from_name("x")
        assert rows._value_plan((custom,))[0][2] is None

    # an order whose values are not of their fields' kinds is written as the ORM writes it
    order = _order("K1", ip="192.0.2.9", reserved_until=timezone.now())
    order.subtotal, order.total, order.language = "250", 250.0, 8
    plan = rows._insert_parts(Order, False)[3]
    values = dict(zip([step[0] for step in plan], rows._db_values(plan, order, True), strict=True))
    for name in ("subtotal", "total", "language", "ip", "reserved_until"):
        field = Order._meta.get_field(name)
        expected = field.get_db_prep_save(getattr(order, name), connection)
        assert values[name] == expected and type(values[name]) is type(expected), name
    assert values["subtotal"] == 250 and values["language"] == "8"
    assert values["created_at"] is not None  # auto_now_add: pre_save stamps it
    # a naive date-time goes through its field: made aware, with Django's warning
    naive = _order("K9", paid_at=datetime.datetime(2026, 12, 6, 12, 0))
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        (paid_at,) = rows._db_values(rows._value_plan((Order._meta.get_field("paid_at"),)), naive, False)
    assert paid_at.utcoffset() is not None
    assert insert_row(order) is True
    assert Order.objects.filter(pk=order.pk, subtotal=250, total=250).exists()
    event = OrderEvent(order=order, kind="order.created", data={"n": 1})
    insert_row(event)
    assert OrderEvent.objects.get(pk=event.pk).order_id == order.pk


def test_related_rows_travel_with_a_locked_joined_read_as_select_rows_reads_them(shop, monkeypatch):
    from platform_core.catalog.models import SKU
    from platform_core.orders.models import OrderLine
    from tests.commerce_helpers import make_product

    sku = make_product(keys=0)
    order = _order("J1")
    insert_row(order)
    for n, title in enumerate(["first", "第二"], start=1):
        insert_row(OrderLine(order=order, sku_id=sku.pk, product_type="card_key", title=title, quantity=n,
                             unit_price=100, total=100 * n, account=f"acct{n}", delivered_quantity=n - 1))
    payment = Payment(order=order, provider="sandbox", amount=300, currency="CNY")
    insert_row(payment)
    lines_sql = rows.related_rows_sql(OrderLine, "order_id", "t0.id")
    joined = ((Order, Payment), "JOIN payments_payment t1 ON t1.order_id = t0.id")
    statements = StatementCounter(monkeypatch)
    with transaction.atomic():
        inbox = WebhookEvent(provider="sandbox", account="main", event_id="evt_J1", kind="payment.succeeded")
        written, _, found = rows.insert_row_locking_joined(
            inbox, "SELECT 1", [], *joined, "t1.id = %s", [payment.pk], suffix="ORDER BY t1.id LIMIT 1 FOR UPDATE",
            ignore_conflicts=True, extra=(lines_sql,))
        assert len(statements.work) == 1 and written
        found_order, found_payment, lines = found
        assert (found_order.pk, found_payment.pk) == (order.pk, payment.pk)
        expected = select_rows(OrderLine, "order_id = %s", [order.pk], suffix="ORDER BY id")
        made = rows.related_rows(OrderLine, lines)
        fields = lambda line: {k: (v, type(v)) for k, v in line.__dict__.items() if k != "_state"}  # noqa: E731
        assert [fields(line) for line in made] == [fields(line) for line in expected] and len(made) == 2
        assert [line.title for line in made] == ["first", "第二"] and not made[0]._state.adding
        # a payment whose order has no lines: none; no payment: nothing found at all
        bare = _order("J2")
        insert_row(bare)
        bare_payment = Payment(order=bare, provider="sandbox", amount=100, currency="CNY")
        insert_row(bare_payment)
        _, _, found = rows.insert_row_locking_joined(
            WebhookEvent(provider="sandbox", account="main", event_id="evt_J2", kind="x"), "SELECT 1", [], *joined,
            "t1.id = %s", [bare_payment.pk], ignore_conflicts=True, extra=(lines_sql,))
        assert found[2] is None and rows.related_rows(OrderLine, found[2]) == []
        _, _, found = rows.insert_row_locking_joined(
            WebhookEvent(provider="sandbox", account="main", event_id="evt_J3", kind="x"), "SELECT 1", [], *joined,
            "t1.id = %s", [-1], ignore_conflicts=True, extra=(lines_sql,))
        assert found is None
    # JSON would not carry a date-time or JSON field exactly: refused
    with pytest.raises(ValueError, match="JSON would not carry"):
        rows.related_rows_sql(OrderEvent, "order_id", "t0.id")
    assert SKU.objects.filter(pk=sku.pk).exists()
