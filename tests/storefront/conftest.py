"""Storefront fixtures: a small catalog in shop alpha and a fake payment provider."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from django.db import connection, transaction
from django_tenants.utils import tenant_context

from plugins.payment import GatewayEvent, PaymentAction, PaymentPlugin

PAY_URL = "https://pay.example.test/checkout/"


class FakeRedirectProvider(PaymentPlugin):
    slug = "fake-redirect"
    name = "Fake gateway"
    public_name = "Fake Pay"

    def start(self, order, payment, *, return_url, notify_url):
        type(self).started.append({"order": order.number, "payment": payment.pk, "return_url": return_url,
                                   "notify_url": notify_url})
        return PaymentAction(kind="redirect", url=f"{PAY_URL}{payment.pk}", external_id=f"fake_{payment.pk}")

    started: list = []


class FakeQrProvider(PaymentPlugin):
    slug = "fake-qr"
    name = "Fake QR"

    def start(self, order, payment, *, return_url, notify_url):
        return PaymentAction(kind="qr", qr_text=f"fakeqr://pay/{payment.pk}")


class FakeInstantProvider(PaymentPlugin):
    slug = "fake-instant"
    name = "Fake wallet"
    public_name = "Balance"
    can_top_up_wallet = False

    def start(self, order, payment, *, return_url, notify_url):
        return PaymentAction(kind="instant")

    def execute(self, payment):
        return GatewayEvent(event_id=f"instant:{payment.pk}", kind="payment.succeeded",
                            payment_reference=str(payment.pk), amount=payment.amount, currency=payment.currency)


@pytest.fixture
def providers(monkeypatch):
    """Payment methods the current shop offers: ``providers(FakeRedirectProvider, ...)``."""
    from platform_core.payments import services

    chosen = {"classes": [FakeRedirectProvider]}
    monkeypatch.setattr(services, "enabled_plugins",
                        lambda shop=None: [cls(connection.tenant) for cls in chosen["classes"]])
    FakeRedirectProvider.started = []

    def choose(*classes):
        chosen["classes"] = list(classes)

    return choose


@dataclass
class Catalog:
    games: object
    steam: object
    gift: object
    card: object  # visible card-key product, two SKUs
    sku30: object
    sku90: object
    hidden: object
    hidden_sku: object
    members: object
    members_sku: object
    soldout: object
    soldout_sku: object
    topup: object
    topup_sku: object
    keys: dict = field(default_factory=dict)


def add_keys(shop, sku, secrets, *, loop=False):
    from platform_core.inventory.models import CardKey
    from platform_core.inventory.stock import KeyCipher, recount

    cipher = KeyCipher(shop)
    CardKey.objects.bulk_create([CardKey(sku=sku, product_id_copy=sku.product_id, secret=cipher.encrypt(s),
                                         fingerprint=cipher.fingerprint(s), is_loop=loop) for s in secrets])
    recount(sku.pk)


@pytest.fixture
def catalog(alpha):
    from platform_core.catalog.models import SKU, Category, Product, WholesalePrice

    with tenant_context(alpha):
        games = Category.objects.create(name="Games", sort_order=1)
        steam = Category.objects.create(name="Steam", parent=games)
        gift = Category.objects.create(name="Gift cards", sort_order=2)
        card = Product.objects.create(name="Steam Wallet Code", category=steam, max_quantity=10,
                                      description='<p>Redeem on <b>Steam</b>.</p><script>alert(1)</script>'
                                                  '<img src="x" onerror="alert(2)">')
        sku30 = SKU.objects.create(product=card, name="30 days", price=1000)
        sku90 = SKU.objects.create(product=card, name="90 days", price=2500, sort_order=1)
        WholesalePrice.objects.create(sku=sku30, min_quantity=5, unit_price=900)
        hidden = Product.objects.create(name="Secret Hidden Thing", category=gift, is_visible=False)
        hidden_sku = SKU.objects.create(product=hidden, price=500)
        members = Product.objects.create(name="VIP Membership Card", category=gift, member_only=True)
        members_sku = SKU.objects.create(product=members, price=800)
        soldout = Product.objects.create(name="Empty Voucher", category=gift)
        soldout_sku = SKU.objects.create(product=soldout, price=300)
        topup = Product.objects.create(name="Mobile Top-up", type=Product.Type.TOPUP, category=gift,
                                       account_label="Phone number", account_pattern=r"1[0-9]{10}")
        topup_sku = SKU.objects.create(product=topup, price=5000)
        keys = {"sku30": [f"AAAA-{i:04d}-KEY" for i in range(8)], "sku90": ["NINETY-0001"],
                "hidden": ["HIDDEN-0001"], "members": ["VIP-0001"]}
        add_keys(alpha, sku30, keys["sku30"])
        add_keys(alpha, sku90, keys["sku90"])
        add_keys(alpha, hidden_sku, keys["hidden"])
        add_keys(alpha, members_sku, keys["members"])
    connection.set_schema_to_public()
    return Catalog(games, steam, gift, card, sku30, sku90, hidden, hidden_sku, members, members_sku, soldout,
                   soldout_sku, topup, topup_sku, keys)


def token_of(response) -> str:
    match = re.search(r'name="token" value="([^"]+)"', response.content.decode())
    assert match, "checkout form has no token"
    return match.group(1)


def mark_paid(shop, number: str):
    """What a verified webhook does: the order paid and its keys sold, in one transaction."""
    from platform_core.orders.models import Order
    from platform_core.orders.services import order_mark_paid

    with tenant_context(shop):
        with transaction.atomic():
            order = Order.objects.select_for_update().get(number=number)
            order_mark_paid(order=order)
        order.refresh_from_db()
    connection.set_schema_to_public()
    return order


@pytest.fixture
def buy(shop_client, alpha, catalog, providers):
    """A guest buys ``quantity`` of the 30-day SKU; returns (client, order number)."""
    from django_tenants.utils import tenant_context

    from platform_core.orders.models import Order

    def run(client=None, quantity=1, contact="buyer@example.com", password="s3cret-pw", sku=None):
        client = client or shop_client(alpha)
        page = client.get(f"/p/{catalog.card.pk}/")
        response = client.post(f"/p/{catalog.card.pk}/", {
            "token": token_of(page), "sku": (sku or catalog.sku30).pk, "quantity": quantity,
            "contact": contact, "query_password": password, "payment": "fake-redirect"})
        assert response.status_code == 302, response.content.decode()[:3000]
        with tenant_context(alpha):
            order = Order.objects.order_by("-id").first()
        connection.set_schema_to_public()
        return client, order.number

    return run
