"""Fixtures for the real-gateway adapters: fake gateways on free ports, the platform
settings pointing the adapters at them, quick retries, shops with a gateway enabled."""
from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from plugins.services import plugin_configure
from tests.fakegateways.stripe import API_KEY as STRIPE_KEY
from tests.fakegateways.stripe import WEBHOOK_SECRET as STRIPE_WEBHOOK_SECRET
from tests.fakegateways.stripe import FakeStripe


@pytest.fixture(autouse=True)
def _quick_retries(settings):
    settings.KAMENG_PAYMENT_HTTP_BACKOFF = 0.01
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (3.05, 5.0)


@pytest.fixture
def fake_stripe(settings):
    with FakeStripe() as fake:
        settings.KAMENG_STRIPE_API_BASE = fake.base_url
        yield fake
    assert not fake.crashes, fake.crashes


def enable_stripe(shop, **data):
    values = {"secret_key": STRIPE_KEY, "webhook_secret": STRIPE_WEBHOOK_SECRET, **data}
    return plugin_configure(shop=shop, slug="stripe", data=values, enable=True)


@pytest.fixture
def stripe_shop(alpha, fake_stripe):
    """alpha with Stripe enabled against the fake, in alpha's schema."""
    with tenant_context(alpha):
        enable_stripe(alpha)
        yield alpha


@pytest.fixture
def fake_paypal(settings):
    from tests.fakegateways.paypal import FakePayPal

    with FakePayPal() as fake:
        settings.KAMENG_PAYPAL_API_BASE = fake.base_url
        yield fake
    assert not fake.crashes, fake.crashes


def enable_paypal(shop, **data):
    from tests.fakegateways.paypal import CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID

    values = {"environment": "sandbox", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "webhook_id": WEBHOOK_ID, **data}
    return plugin_configure(shop=shop, slug="paypal", data=values, enable=True)


@pytest.fixture
def paypal_shop(alpha, fake_paypal):
    """alpha with PayPal enabled against the fake, in alpha's schema."""
    with tenant_context(alpha):
        enable_paypal(alpha)
        yield alpha
