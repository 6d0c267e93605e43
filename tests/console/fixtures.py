"""Fixtures shared by the console and API tests of the commerce core: a staff member,
a payment provider that refunds, and paid orders with real encrypted keys."""
from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from tests.conftest import PASSWORD
from tests.testplugins.refund_gateway.plugin import RefundGatewayPlugin

REFUND_PROVIDER = RefundGatewayPlugin.slug


@pytest.fixture
def refund_gateway(monkeypatch):
    """The refund-capable test provider, installed for this test even when
    settings_test.py does not list its app yet."""
    from plugins.registry import installed_plugins

    installed = installed_plugins()
    if REFUND_PROVIDER not in installed:
        monkeypatch.setitem(installed, REFUND_PROVIDER, RefundGatewayPlugin)
    RefundGatewayPlugin.refunds.clear()
    monkeypatch.setattr(RefundGatewayPlugin, "refuse_with", "")
    return RefundGatewayPlugin


@pytest.fixture
def carol(alpha):
    """A member of alpha with the read-only staff role."""
    from tenants.models import Merchant, ShopMembership

    carol = Merchant.objects.create_user("carol@example.com", PASSWORD, name="Carol")
    ShopMembership.objects.create(shop=alpha, merchant=carol, role=ShopMembership.Role.STAFF)
    return carol


@pytest.fixture
def paid_order(alpha, refund_gateway):
    """``paid_order(quantity=2, price=1500)``: a delivered card-key order of alpha, paid
    through the refund-capable provider. Returns (order, sku, plaintext keys)."""
    from platform_core.orders.services import LineRequest, order_delivered_items, order_place
    from tests.commerce_helpers import make_product, pay

    def make(quantity=2, price=1500, keys=5, contact="buyer@example.com"):
        with tenant_context(alpha):
            sku = make_product(keys=keys, price=price)
            order = order_place(lines=[LineRequest(sku.pk, quantity)], contact=contact, query_password="1234")
            assert pay(order, provider=REFUND_PROVIDER) == "paid"
            order.refresh_from_db()
            secrets = [item.secret for item in order_delivered_items(order)]
        return order, sku, secrets

    return make
