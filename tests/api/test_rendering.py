"""api.rendering: an output serializer bound once per thread answers exactly what a
freshly built one answers, object after object and from many threads at once; an input
serializer bound once validates exactly as a fresh one, request after request."""
from __future__ import annotations

import threading

from django.db import connection
from django_tenants.utils import tenant_context

from api import serializers_commerce as s
from api.rendering import rendered, validated_values
from platform_core.orders.models import Order
from platform_core.orders.selectors import order_with_history
from platform_core.orders.services import LineRequest, order_place
from tests.commerce_helpers import make_product, pay


def _orders(count_pending: int = 2):
    sku = make_product(keys=10, price=700)
    paid = order_place(lines=[LineRequest(sku.pk, 2)], contact="paid@example.com", query_password="1234")
    pay(paid)
    pending = [order_place(lines=[LineRequest(sku.pk, 1)], contact=f"p{n}@example.com", query_password="1234")
               for n in range(count_pending)]
    return [order_with_history(number=order.number) for order in [paid, *pending]]


def test_rendered_equals_a_fresh_serializer_for_orders_in_different_states(alpha):
    with tenant_context(alpha):
        orders = _orders()
        assert orders[0].status == Order.Status.DELIVERED and orders[0].payments.all()
        for order in orders + orders[::-1]:  # in either order: nothing carries over
            assert rendered(s.OrderDetailOutput, order) == s.OrderDetailOutput(order).data
        assert rendered(s.OrderDetailOutput, orders[0])["payments"][0]["status"] == "succeeded"
        assert rendered(s.OrderDetailOutput, orders[1])["payments"] == []
        listed = Order.objects.order_by("id").prefetch_related("lines")
        assert rendered(s.OrderOutput, listed, many=True) == s.OrderOutput(listed, many=True).data
        assert len(rendered(s.OrderOutput, listed, many=True)) == 3


def test_rendered_from_many_threads_gives_each_its_own_answer(alpha):
    with tenant_context(alpha):
        orders = _orders(count_pending=5)
        expected = [s.OrderDetailOutput(order).data for order in orders]
    wrong, failures, done, schema = [], [], [], connection.schema_name

    def render_many(offset: int):
        # each thread has its own connection (outside the test's transaction: the pending
        # orders' related rows it reads are none, as in the expected answers)
        try:
            with tenant_context(alpha):
                for n in range(60):
                    index = (offset + n) % len(orders)
                    if rendered(s.OrderDetailOutput, orders[index]) != expected[index]:
                        wrong.append(index)
                    done.append(index)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=render_many, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(done) == 6 * 60
    assert wrong == [] and schema == connection.schema_name


ORDER_INPUTS = [
    {"lines": [{"sku_id": 7, "quantity": 2}], "contact": "a@example.com", "query_password": "1234",
     "payment": {"provider": "sandbox"}},
    {"lines": [], "contact": "a@example.com", "query_password": "1234"},  # no line
    {"lines": [{"sku_id": "x", "quantity": -1}], "contact": "", "query_password": "12"},
    {"lines": [{"sku_id": 7, "quantity": 1}], "contact": "b@example.com", "query_password": "abcd"},
    {"lines": "not a list", "payment": {"provider": ""}},
    ["not", "an", "object"],
    {"lines": [{"sku_id": 7, "quantity": 1, "account": "13800000000"}], "contact": "c@example.com",
     "query_password": "abcd", "unknown": "ignored"},
]


def test_validated_values_answers_what_a_fresh_input_serializer_answers():
    for data in ORDER_INPUTS * 2:  # twice: nothing of one request stays for the next
        fresh = s.OrderCreateInput(data=data)
        expected = (fresh.validated_data, None) if fresh.is_valid() else (None, fresh.errors)
        values, errors = validated_values(s.OrderCreateInput, data)
        assert (values, errors) == expected, data
    good, _ = validated_values(s.OrderCreateInput, ORDER_INPUTS[0])
    validated_values(s.OrderCreateInput, ORDER_INPUTS[3])
    assert good["lines"][0]["quantity"] == 2 and good["payment"]["provider"] == "sandbox"  # not overwritten
