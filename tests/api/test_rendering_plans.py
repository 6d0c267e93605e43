"""``api.rendering.rendered``'s plans (the shortcut past DRF's per-field machinery) answer
exactly what the DRF serializer answers, for the orders a shop really has (new, paid and
delivered, partly refunded, with a ticket, a top-up with its account, a free one) and for
plain dicts, and fall back to DRF wherever the shortcut cannot apply."""
from __future__ import annotations

import datetime

import pytest
from django_tenants.utils import tenant_context
from rest_framework import serializers

from api import serializers_commerce as s
from api.rendering import rendered
from platform_core.catalog.models import Product
from platform_core.db.rows import remember_related
from platform_core.orders import selectors, services
from platform_core.orders.services import LineRequest
from platform_core.payments.models import Payment
from tests.commerce_helpers import make_product, pay


@pytest.fixture
def shop(alpha):
    with tenant_context(alpha):
        yield alpha


def _place(sku, quantity=1, account=""):
    return services.order_place(lines=[LineRequest(sku.pk, quantity, account)], contact="r@example.com",
                                query_password="1234")


def _same_as_drf(serializer_class, instance):
    ours = rendered(serializer_class, instance)
    assert ours == serializer_class(instance).data
    return ours


def test_every_kind_of_order_renders_as_drf_renders_it(shop):
    cards = make_product(keys=6, price=1500)
    pending = _place(cards, 2)
    delivered = _place(cards)
    pay(delivered)
    refunded = _place(cards)
    pay(refunded)
    refunded.refresh_from_db()
    services.ticket_open(order=refunded, reason="invalid_key", message="This key does not work.")
    payment = Payment.objects.get(order=refunded)
    services.order_refund_recorded_outside(order=refunded, payment=payment, amount=500, external_id="re_1")
    topup = make_product(name="Phone credit", price=1000, type=Product.Type.TOPUP, account_pattern=r"1\d{10}",
                         account_label="phone number")
    topped = _place(topup, 1, account="13800138000")
    free = make_product(name="Free sample", price=0, keys=2)
    freebie = _place(free)
    for order in (pending, delivered, refunded, topped, freebie):
        read = selectors.order_with_history(number=order.number)
        answer = _same_as_drf(s.OrderDetailOutput, read)
        assert answer["number"] == order.number
    answer = _same_as_drf(s.OrderDetailOutput, selectors.order_with_history(number=refunded.number))
    assert answer["payments"][0]["refunds"][0]["amount_minor"] == 500 and answer["ticket_ids"]
    # the order a checkout just wrote, answered from the rows in hand (as the API does)
    remember_related(pending, lines=pending.placed_lines, events=pending.placed_events, payments=[], tickets=[])
    assert _same_as_drf(s.OrderDetailOutput, pending)["lines"][0]["quantity"] == 2
    # many at once
    many = list(selectors.order_list(status=None, contact="", number="").prefetch_related("lines"))
    assert rendered(s.OrderOutput, many, many=True) == s.OrderOutput(many, many=True).data


def test_a_dict_renders_as_drf_renders_it_nulls_included():
    answer = _same_as_drf(s.PaymentStartOutput, {
        "payment_id": 7, "provider": "sandbox", "amount": 1050, "order_total": 1000, "fee": 50,
        "fee_passed_to_buyer": True, "currency": "CNY", "action": "redirect", "url": "https://pay.test/7",
        "qr_text": None, "external_id": ""})
    assert answer["qr_text"] is None and answer["amount"] == 1050


class _Odd(serializers.Serializer):
    """Fields the shortcut must leave to DRF."""

    number = serializers.CharField()
    count = serializers.IntegerField(source="counted")  # a method: DRF calls it
    nested = serializers.CharField(source="inner.name")  # a dotted source
    missing = serializers.IntegerField(required=False)  # absent: DRF skips it
    fallback = serializers.CharField(default="dflt")  # absent: DRF gives the default
    when = serializers.DateTimeField()
    flag = serializers.BooleanField()
    label = serializers.SerializerMethodField()

    def get_label(self, obj) -> str:
        return f"#{obj.number}"


class _Thing:
    def __init__(self, number, inner_name):
        self.number, self.when, self.flag = number, datetime.datetime(2026, 12, 6, 8, 0, tzinfo=datetime.UTC), 1
        self.inner = type("Inner", (), {"name": inner_name})()

    def counted(self):
        return 41 + 1


def test_fields_it_cannot_shortcut_go_through_drf():
    for thing in (_Thing(5, "x"), _Thing("5", 3)):  # an int to a text field, text from a nested int
        answer = _same_as_drf(_Odd, thing)
        assert answer["count"] == 42 and answer["fallback"] == "dflt" and "missing" not in answer
        assert answer["number"] == "5" and answer["flag"] is True and answer["label"] == "#5"
