"""Prepared statements (decision 0038) on a connection that serves many shop schemas:
a statement prepared in one shop never reads another shop's tables."""
from __future__ import annotations

from django.db import connection
from django_tenants.utils import tenant_context

from platform_core.catalog.models import Product


def _names() -> list[str]:
    return sorted(Product.objects.filter(name__endswith=" only").values_list("name", flat=True))


def test_a_statement_prepared_in_one_shop_reads_the_next_shops_own_tables(alpha, bravo):
    for shop in (alpha, bravo):
        with tenant_context(shop):
            Product.objects.create(name=f"{shop.slug.title()} only")
    with tenant_context(alpha):
        for _ in range(8):  # past psycopg's prepare threshold (5 runs)
            assert _names() == ["Alpha only"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                           ['%"catalog_product"%'])
            assert cursor.fetchone()[0] >= 1, "the query was not prepared: the test proves nothing"
    for _ in range(3):  # the same prepared statement, alternating shops on one connection
        with tenant_context(bravo):
            assert _names() == ["Bravo only"]
        with tenant_context(alpha):
            assert _names() == ["Alpha only"]
