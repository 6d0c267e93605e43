"""POST /api/v1/orders/<number>/payments/: start paying an order through the API."""
from __future__ import annotations

from django.test import Client
from django_tenants.utils import tenant_context
from rest_framework.authtoken.models import Token

from platform_core.orders.services import LineRequest, order_place
from platform_core.payments.models import Payment
from plugins.services import plugin_configure
from tests.commerce_helpers import make_product


def test_wallet_payment_cannot_start_for_a_guest_order_and_unknown_provider_is_refused(alpha, alice):
    with tenant_context(alpha):
        sku = make_product(keys=2)
        order = order_place(lines=[LineRequest(sku.pk, 1)], contact="g@example.com", query_password="1234")
        plugin_configure(shop=alpha, slug="wallet", data={}, enable=True)
    client = Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    response = client.post(f"/api/v1/orders/{order.number}/payments/", {"provider": "wallet"},
                           content_type="application/json")
    assert response.status_code == 400 and response.json()["field"] == "provider"
    assert client.post("/api/v1/orders/nope/payments/", {"provider": "wallet"},
                       content_type="application/json").status_code == 404
    with tenant_context(alpha):
        assert not Payment.objects.exists()


def test_payment_start_needs_a_manager_of_this_shop(alpha, bravo, bob):
    with tenant_context(alpha):
        sku = make_product(keys=1)
        order = order_place(lines=[LineRequest(sku.pk, 1)], contact="g@example.com", query_password="1234")
    client = Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    assert client.post(f"/api/v1/orders/{order.number}/payments/", {"provider": "sandbox"},
                       content_type="application/json").status_code == 403
