"""Catalog services refuse fields they do not know, naming the field."""
from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from platform_core.catalog import services


def test_unknown_fields_are_refused_by_name(alpha):
    with tenant_context(alpha):
        with pytest.raises(services.CatalogError) as error:
            services.product_create(name="Card", colour="red")
        assert error.value.field == "colour" and "Unknown product field" in str(error.value)
        product = services.product_create(name="Card")
        sku = services.sku_create(product=product, price=100)
        with pytest.raises(services.CatalogError) as error:
            services.sku_update(sku=sku, changes={"stock": 5})
        assert error.value.field == "stock"
        category = services.category_create(name="Games")
        with pytest.raises(services.CatalogError) as error:
            services.category_update(category=category, changes={"icon": "x"})
        assert error.value.field == "icon"
