"""Payments fixtures: a real sandbox gateway on a free port, card-key stock, the sandbox
plugin configured against that gateway, and the HTTP bridge to the shop."""
from __future__ import annotations

import json
import secrets
import time

import pytest
from django_tenants.utils import tenant_context

from sandbox_gateway import serve_in_thread, signature_header, webhook_secret_for
from tests.conftest import host_of
from tests.payments.bridge import ShopBridge

PAYMENT_PLUGINS = ("sandbox", "wallet")
WEBHOOK_PATH = "/hooks/payments/sandbox/"


def new_api_key() -> str:
    return "sk_sandbox_" + secrets.token_hex(16)


@pytest.fixture(autouse=True)
def _payment_plugins_installed():
    from plugins.registry import installed_plugins

    missing = [slug for slug in PAYMENT_PLUGINS if slug not in installed_plugins()]
    if missing:
        pytest.fail(f"payment plugins {missing} are not installed: add 'plugins.payments.sandbox' and "
                    f"'plugins.payments.wallet' to KAMENG_BUILTIN_PLUGINS in platform_core/settings.py")


@pytest.fixture
def gateway():
    """A real sandbox gateway on a free port with its own throw-away database; retries
    come quickly so background deliveries settle within a test."""
    server, base_url = serve_in_thread(webhook_timeout=3.0, retry_delays=(0.2, 0.5))
    server.base = base_url
    yield server
    server.stop()


@pytest.fixture
def api_key():
    return new_api_key()


def make_stock(shop, *, keys: int = 3, price: int = 1000, name: str = "Game card 100"):
    """A card-key product with one SKU and ``keys`` encrypted keys; returns (sku, plaintexts)."""
    from platform_core.catalog.models import SKU, Product
    from platform_core.inventory.models import CardKey
    from platform_core.inventory.stock import KeyCipher

    product = Product.objects.create(name=name, type=Product.Type.CARD_KEY)
    sku = SKU.objects.create(product=product, price=price)
    cipher = KeyCipher(shop)
    plaintexts = [f"CARD-{sku.pk}-{n}-{secrets.token_hex(4)}" for n in range(keys)]
    CardKey.objects.bulk_create([
        CardKey(sku=sku, product_id_copy=product.pk, secret=cipher.encrypt(text), fingerprint=cipher.fingerprint(text))
        for text in plaintexts
    ])
    SKU.objects.filter(pk=sku.pk).update(available_count=keys)
    sku.refresh_from_db()
    return sku, plaintexts


def enable_sandbox(shop, gateway, api_key):
    from plugins.services import plugin_configure

    return plugin_configure(shop=shop, slug="sandbox", data={"gateway_url": gateway.base, "api_key": api_key},
                            enable=True)


def place_order(sku, *, quantity: int = 2, customer=None, contact: str = "buyer@example.com"):
    from platform_core.orders.services import LineRequest, order_place

    return order_place(lines=[LineRequest(sku_id=sku.pk, quantity=quantity)], contact=contact,
                       query_password="" if customer else "look-me-up", customer=customer)


def signed_post(client, body: bytes | str, api_key: str, *, timestamp: int | None = None, secret: str | None = None,
                header: str | None = None):
    """POST a webhook to the shop as the gateway would, signing it ourselves."""
    body = body.encode() if isinstance(body, str) else body
    if header is None:
        header = signature_header(secret or webhook_secret_for(api_key), int(time.time()) if timestamp is None
                                  else timestamp, body)
    return client.post(WEBHOOK_PATH, data=body, content_type="application/json",
                       headers={"Sandbox-Signature": header})


def event_body(event_id: str, kind: str, obj: dict) -> str:
    return json.dumps({"id": event_id, "type": kind, "created": int(time.time()), "data": {"object": obj}})


@pytest.fixture
def bridge(alpha):
    shop_bridge = ShopBridge(host_of(alpha))
    yield shop_bridge
    shop_bridge.close()


@pytest.fixture
def sandbox_shop(alpha, gateway, api_key):
    """alpha with the sandbox plugin enabled against the test gateway, in its schema."""
    with tenant_context(alpha):
        enable_sandbox(alpha, gateway, api_key)
        yield alpha
