"""Fixtures shared by the platform tests."""
from __future__ import annotations

import pytest
from django.db import connection

from platform_core.catalog.models import Product


@pytest.fixture
def two_shops(alpha, bravo):
    """Alpha and bravo, each with one product of its own ("Alpha card", "Bravo card")."""
    for shop, name in ((alpha, "Alpha card"), (bravo, "Bravo card")):
        connection.set_tenant(shop)
        Product.objects.all().delete()
        Product.objects.create(name=name)
    connection.set_schema_to_public()
    return alpha, bravo
