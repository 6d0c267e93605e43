"""The database backend sends ``SET search_path`` only when the session does not have
the path the current shop needs: never twice for the same shop, always after a switch,
and again after anything that may have undone it (rollback, reconnect)."""
from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from platform_core.catalog.models import Product


def _names_and_sets():
    with CaptureQueriesContext(connection) as captured:
        names = list(Product.objects.order_by("id").values_list("name", flat=True))
    return names, [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SET search_path")]


def test_the_same_shop_again_sends_no_set_and_another_shop_does(two_shops):
    alpha, bravo = two_shops
    connection.set_tenant(alpha)
    assert _names_and_sets()[0] == ["Alpha card"]
    # what the routing middleware does on every request: public first, then the shop
    connection.set_schema_to_public()
    connection.set_tenant(alpha)
    assert _names_and_sets() == (["Alpha card"], [])
    connection.set_tenant(bravo)
    names, sets = _names_and_sets()
    assert names == ["Bravo card"] and sets == ['SET search_path = "shop_bravo","public"']
    connection.set_tenant(alpha)
    assert _names_and_sets() == (["Alpha card"], ['SET search_path = "shop_alpha","public"'])
    connection.set_schema_to_public()


def test_a_rolled_back_set_is_sent_again(two_shops):
    alpha, bravo = two_shops
    connection.set_tenant(alpha)
    _names_and_sets()
    with CaptureQueriesContext(connection) as captured:
        with pytest.raises(RuntimeError), transaction.atomic():
            connection.set_tenant(bravo)
            assert _names_and_sets()[0] == ["Bravo card"]  # SET inside the transaction...
            raise RuntimeError
        # ...undone by the rollback, so it is sent again before the next statement
        connection.set_tenant(bravo)
        assert _names_and_sets()[0] == ["Bravo card"]
    statements = [q["sql"].split(" ")[0] for q in captured.captured_queries]
    rollback = next(n for n, sql in enumerate(statements) if sql == "ROLLBACK")
    assert "SET" in statements[rollback:]
    connection.set_schema_to_public()


def test_a_new_connection_gets_its_set(alpha):
    from django.db import connections

    other = connections.create_connection("default")  # outside the test's transaction
    other.force_debug_cursor = True
    try:
        for _ in range(2):
            other.set_tenant(alpha)
            with other.cursor() as cursor:
                cursor.execute("SELECT current_schemas(false)")
                assert cursor.fetchone()[0] == ["shop_alpha", "public"]
            other.close()
        assert [q["sql"] for q in other.queries_log if q["sql"].startswith("SET")] == \
            ['SET search_path = "shop_alpha","public"'] * 2
    finally:
        other.close()
