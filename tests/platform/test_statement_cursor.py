"""The cursor kept per connection for the hot paths' own statements (decision 0051)
behaves as Django's: the current shop's tables, Django's errors, no statement in a
broken transaction, execute wrappers, and Django's own cursor whenever the connection
needs more (no connection yet, a search path to set, queries being logged)."""
from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from platform_core.catalog.models import Product
from platform_core.db.cursors import KeptCursor, statement_cursor


def _product_names() -> list[str]:
    with statement_cursor() as cursor:
        cursor.execute("SELECT name FROM catalog_product ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def test_one_cursor_serves_every_statement_of_a_connection_in_the_current_shop(two_shops):
    alpha, bravo = two_shops
    connection.set_tenant(alpha)
    assert _product_names() == ["Alpha card"]
    first = statement_cursor()
    assert isinstance(first, KeptCursor) and statement_cursor() is first
    # a switch of shop: Django's cursor sets the path once, then the kept one serves again
    connection.set_tenant(bravo)
    assert not isinstance(statement_cursor(), KeptCursor)
    assert _product_names() == ["Bravo card"]
    assert statement_cursor() is first
    connection.set_tenant(alpha)
    assert _product_names() == ["Alpha card"]
    # as on every request: public, then the shop the session already has
    connection.set_schema_to_public()
    connection.set_tenant(alpha)
    assert statement_cursor() is first and _product_names() == ["Alpha card"]


def test_after_a_rolled_back_search_path_the_kept_cursor_reads_the_current_shop(two_shops):
    alpha, bravo = two_shops
    connection.set_tenant(alpha)
    _product_names()
    with pytest.raises(RuntimeError), transaction.atomic():
        connection.set_tenant(bravo)
        assert _product_names() == ["Bravo card"]  # SET inside the transaction, undone by the rollback
        raise RuntimeError
    assert _product_names() == ["Bravo card"]
    connection.set_tenant(alpha)
    assert _product_names() == ["Alpha card"]


def test_errors_are_djangos_and_a_broken_transaction_runs_nothing(alpha):
    connection.set_tenant(alpha)
    _product_names()
    product = Product.objects.create(name="Card")
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic():
            with statement_cursor() as cursor:
                cursor.execute("INSERT INTO catalog_product (id, name) SELECT id, name FROM catalog_product "
                               "WHERE id = %s", [product.pk])
        assert _product_names()[-1] == "Card"  # the savepoint's rollback left the rest usable
        transaction.set_rollback(True)
        with pytest.raises(TransactionManagementError), statement_cursor() as cursor:
            cursor.execute("SELECT 1")


def test_execute_wrappers_see_its_statements(alpha):
    connection.set_tenant(alpha)
    _product_names()
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append((sql, params, context["connection"] is connections["default"]))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        with statement_cursor() as cursor:
            cursor.execute("SELECT %s::int + 1", [41])
            assert cursor.fetchone() == (42,)
    assert seen == [("SELECT %s::int + 1", [41], True)]


def test_logged_queries_and_a_due_health_check_take_djangos_cursor(alpha, monkeypatch):
    connection.set_tenant(alpha)
    _product_names()
    with CaptureQueriesContext(connection) as captured:
        assert not isinstance(statement_cursor(), KeptCursor)
        _product_names()
    assert [q["sql"] for q in captured.captured_queries] == ["SELECT name FROM catalog_product ORDER BY id"]
    db = connections["default"]
    monkeypatch.setattr(db, "health_check_enabled", True)
    monkeypatch.setattr(db, "health_check_done", False)
    with statement_cursor() as cursor:  # Django's: it checks the connection first
        assert not isinstance(cursor, KeptCursor)
        cursor.execute("SELECT 1")
    assert db.health_check_done and isinstance(statement_cursor(), KeptCursor)


def test_a_new_connection_gets_a_new_kept_cursor(alpha):
    """On a thread of its own (the test's connection holds the test's transaction)."""
    from concurrent.futures import ThreadPoolExecutor

    def schema_and_cursor():
        with statement_cursor() as cursor:
            cursor.execute("SELECT current_schema()")
            return cursor.fetchone()[0], cursor

    def on_a_new_thread():
        connection.set_tenant(alpha)
        try:
            first = schema_and_cursor()  # not connected yet: Django's cursor connects
            kept = schema_and_cursor()
            connection.close()
            reconnected = schema_and_cursor()
            kept_again = schema_and_cursor()
            return first, kept, reconnected, kept_again, connection.connection
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        first, kept, reconnected, kept_again, raw = pool.submit(on_a_new_thread).result()
    assert {first[0], kept[0], reconnected[0], kept_again[0]} == {"shop_alpha"}
    assert not isinstance(first[1], KeptCursor) and not isinstance(reconnected[1], KeptCursor)
    assert isinstance(kept[1], KeptCursor) and isinstance(kept_again[1], KeptCursor)
    assert kept_again[1] is not kept[1] and kept_again[1].cursor.connection is raw
