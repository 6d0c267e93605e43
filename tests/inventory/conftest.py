"""Fixtures for card-key stock: a card-key product with one SKU in shop alpha, and the
test running inside alpha's schema."""
from __future__ import annotations

import io

import pytest
from django.db import connection
from django_tenants.utils import tenant_context


@pytest.fixture
def in_alpha(alpha):
    with tenant_context(alpha):
        yield alpha


@pytest.fixture
def product(in_alpha):
    from platform_core.catalog.models import Product

    return Product.objects.create(name="Game card", type=Product.Type.CARD_KEY)


@pytest.fixture
def sku(product):
    from platform_core.catalog.models import SKU

    return SKU.objects.create(product=product, name="30 days", price=1000)


@pytest.fixture
def importer(in_alpha, sku):
    """``importer(text_or_bytes, **options)``: keys_import from an in-memory file."""
    from platform_core.inventory.services import keys_import

    def run(content, *, source="txt", target=None, **options):
        data = content.encode() if isinstance(content, str) else content
        return keys_import(shop=in_alpha, sku=target or sku, source=source, stream=io.BytesIO(data), **options)

    return run


def counters(sku) -> dict[str, int]:
    sku.refresh_from_db()
    return {"available": sku.available_count, "reserved": sku.reserved_count, "sold": sku.sold_count}


def raw_secrets(sku) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM inventory_cardkey WHERE sku_id = %s ORDER BY id", [sku.pk])
        return [row[0] for row in cursor.fetchall()]
