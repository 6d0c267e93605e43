"""A paid order through the API — place with payment, then the gateway's webhook —
costs a fixed, small number of statements and Redis commands: each is a round trip
that costs more than its Python (decision 0042). The counts are the budget; a change
that adds a round trip to every sale shows up here."""
from __future__ import annotations

import json

import pytest
import redis
from django_tenants.utils import tenant_context

from platform_core.inventory.models import CardKey, DeliveredKey
from platform_core.orders.models import Order
from tests.api.test_commerce_api import api
from tests.bench._shop import API_KEY, payment_succeeded_event, signed_webhook
from tests.commerce_helpers import StatementCounter
from tests.payments.conftest import enable_sandbox, make_stock

#: statements through Django's cursors, BEGIN/COMMIT aside (tests run in a transaction,
#: so each transaction shows as a SAVEPOINT and a RELEASE here: two per transaction)
#: the test shop's plan has an order limit: one count of this month's orders; the payment
#: is started at the gateway in the order's own transaction and written once, with the
#: gateway's id, its INSERT with the key claim; the API token is read from the database
#: unless the process remembers it (KAMENG_CACHE_PROCESS_SECONDS)
PLACE_STATEMENTS = {0: 8, 60: 7}
WEBHOOK_STATEMENTS = 5  # the inbox row, the lock timeout, the locked payment and order and its lines: one statement
#: cache reads per request: the route, and the plugins and plan of the shop it named last
#: time, in one MGET; none while the process remembers them (KAMENG_CACHE_PROCESS_SECONDS)
CACHE_READS = {0: ["MGET"], 60: []}


@pytest.fixture
def redis_commands(monkeypatch):
    sent: list[str] = []
    original = redis.Redis.execute_command

    def execute_command(client, *args, **options):
        sent.append(str(args[0]))
        return original(client, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", execute_command)
    return sent


@pytest.mark.parametrize("process_seconds", [0, 60])
def test_a_paid_order_stays_within_its_round_trip_budget(alpha, alice, gateway, monkeypatch, redis_commands,
                                                         settings, process_seconds):
    from api import authentication
    from platform_core import cache as kameng_cache

    settings.KAMENG_CACHE_PROCESS_SECONDS = process_seconds
    monkeypatch.setattr(kameng_cache, "_recently_prefetched", {})  # this test's own, gone after it
    monkeypatch.setattr(authentication, "_recently_authenticated", {})
    with tenant_context(alpha):
        enable_sandbox(alpha, gateway, API_KEY)
        sku, _ = make_stock(alpha, keys=3, price=100)
    client = api(alpha, alice)
    body = json.dumps({"lines": [{"sku_id": sku.pk, "quantity": 1}], "contact": "budget@example.com",
                       "query_password": "1234", "payment": {"provider": "sandbox"}})
    statements = StatementCounter(monkeypatch)
    for attempt in range(2):  # the first warms the caches (routing, plugins, plan)
        statements.clear()
        redis_commands.clear()
        placed = client.post("/api/v1/orders/", body, content_type="application/json")
        assert placed.status_code == 201, placed.content
        place_statements, place_redis = list(statements.sent), list(redis_commands)
        payment = placed.json()["payment"]
        hook_body, headers = signed_webhook(payment_succeeded_event(
            payment["payment_id"], payment["amount"], payment["currency"], 0, payment["external_id"]))
        statements.clear()
        redis_commands.clear()
        answer = client.post("/hooks/payments/sandbox/", hook_body, content_type="application/json",
                             headers={"Sandbox-Signature": headers["Sandbox-Signature"]})
        assert answer.status_code == 200, answer.content
    hook_statements = list(statements.sent)
    hook_redis = list(redis_commands)
    assert len(place_statements) <= PLACE_STATEMENTS[process_seconds], "\n".join(place_statements)
    assert len(hook_statements) <= WEBHOOK_STATEMENTS, "\n".join(hook_statements)
    # the payment's row is written once while placing the order: no UPDATE after the gateway's answer
    assert not any('UPDATE "payments_payment"' in s for s in place_statements), "\n".join(place_statements)
    # paid and delivered in one transaction: the order's row is written once, with both
    assert sum(s.count('UPDATE "orders_order"') for s in hook_statements) == 1, "\n".join(hook_statements)
    # every sale of the SKU updates its one row: locked by the transaction's last statement
    # only (the one before COMMIT), so parallel sales queue behind it for less time
    sku_writes = [n for n, s in enumerate(hook_statements) if "UPDATE catalog_sku" in s]
    assert sku_writes and sku_writes[-1] == max(n for n, s in enumerate(hook_statements)
                                                if not s.startswith(("SAVEPOINT", "RELEASE"))), \
        "\n".join(hook_statements)
    assert len(sku_writes) == 1, "\n".join(hook_statements)
    reads = ("GET", "MGET")  # the webhook also queues the e-mail with the keys (the broker's own commands)
    assert [c for c in place_redis if c in reads] == CACHE_READS[process_seconds], place_redis
    assert [c for c in hook_redis if c in reads] == CACHE_READS[process_seconds], hook_redis
    # and the order is really delivered: one key sold, one delivered, counters moved
    with tenant_context(alpha):
        order = Order.objects.get(number=placed.json()["number"])
        assert order.status == "delivered" and order.events.count() == 3
        assert order.payment_method == "sandbox" and order.paid_at <= order.delivered_at
        assert [(e.from_status, e.to_status) for e in order.events.order_by("id")] == [
            ("", "pending_payment"), ("pending_payment", "paid"), ("paid", "delivered")]
        delivered = DeliveredKey.objects.get(order_line__order=order)
        assert CardKey.objects.get(pk=delivered.card_key_id).status == "sold"
        sku.refresh_from_db()
        assert (sku.available_count, sku.reserved_count, sku.sold_count) == (1, 0, 2)
