"""Shop API of the commerce core: token auth per shop, catalog, key import, orders with
idempotency, refunds, tickets, customers; every refusal a 4xx with the field at fault."""
from __future__ import annotations

import io

import pytest
from django.test import Client
from django_tenants.utils import tenant_context
from rest_framework.authtoken.models import Token

from platform_core.audit.models import AuditEvent
from platform_core.catalog import services as catalog
from platform_core.catalog.models import SKU, Category, Product
from platform_core.customers.services import customer_register, wallet_credit
from platform_core.orders import services as orders
from platform_core.orders.models import Order
from tests.commerce_helpers import make_product
from tests.conftest import host_of


def api(shop, user=None) -> Client:
    """A client on ``shop``'s host authenticated with ``user``'s API token."""
    headers = {}
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        headers["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    return Client(HTTP_HOST=host_of(shop), **headers)


def post(client, url, data=None, **extra):
    return client.post(url, data if data is not None else {}, content_type="application/json", **extra)


def patch(client, url, data):
    return client.patch(url, data, content_type="application/json")


def assert_refused(response, status, field=None, code=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["detail"] and "field" in body and "code" in body
    if field is not None:
        assert body["field"] == field, body
    if code is not None:
        assert body["code"] == code, body
    return body


PRODUCT = {"name": "Netflix 30 days", "type": "card_key", "description": "<p>Fast</p>",
           "skus": [{"name": "30 days", "price_minor": 1999,
                     "wholesale_prices": [{"min_quantity": 10, "unit_price_minor": 1800}]}]}


# --- auth and isolation --------------------------------------------------------------

def test_token_is_required_and_only_works_on_the_shops_of_its_owner(alpha, bravo, alice, bob):
    assert Client(HTTP_HOST=host_of(alpha)).get("/api/v1/products/").status_code in (401, 403)
    assert api(alpha, alice).get("/api/v1/products/").status_code == 200
    refused = api(bravo, alice).get("/api/v1/products/")
    assert_refused(refused, 403)
    assert api(bravo, alice).get("/api/v1/orders/").status_code == 403


def test_an_order_of_one_shop_is_not_found_on_another(alpha, bravo, alice, bob):
    with tenant_context(alpha):
        sku = make_product(keys=1)
        order = orders.order_place(lines=[orders.LineRequest(sku.pk, 1)], contact="b@example.com",
                                   query_password="1234")
    assert api(alpha, alice).get(f"/api/v1/orders/{order.number}/").status_code == 200
    assert_refused(api(bravo, bob).get(f"/api/v1/orders/{order.number}/"), 404, code="not_found")
    assert_refused(api(bravo, bob).get(f"/api/v1/orders/{order.number}/keys/"), 404)
    assert_refused(post(api(bravo, bob), f"/api/v1/orders/{order.number}/cancel/"), 404)
    assert_refused(api(bravo, bob).get(f"/api/v1/skus/{sku.pk}/stock/"), 404)


def test_staff_role_reads_but_cannot_write(alpha, alice, carol):
    client = api(alpha, carol)
    assert client.get("/api/v1/categories/").status_code == 200
    assert_refused(post(client, "/api/v1/categories/", {"name": "Games"}), 403)
    assert_refused(post(client, "/api/v1/products/", PRODUCT), 403)
    with tenant_context(alpha):
        assert not Category.objects.exists() and not Product.objects.exists()


# --- catalog -------------------------------------------------------------------------

def test_categories_two_levels(alpha, alice):
    client = api(alpha, alice)
    games = post(client, "/api/v1/categories/", {"name": "Games"})
    assert games.status_code == 201
    steam = post(client, "/api/v1/categories/", {"name": "Steam", "parent_id": games.json()["id"]})
    assert steam.status_code == 201 and steam.json()["parent_id"] == games.json()["id"]
    assert_refused(post(client, "/api/v1/categories/", {"name": "Deep", "parent_id": steam.json()["id"]}), 400,
                   field="parent_id")
    assert_refused(post(client, "/api/v1/categories/", {"name": "X", "parent_id": 999999}), 400, field="parent_id")
    assert_refused(post(client, "/api/v1/categories/", {"name": ""}), 400, field="name")
    renamed = patch(client, f"/api/v1/categories/{games.json()['id']}/", {"name": "PC games"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "PC games"
    assert [c["name"] for c in client.get("/api/v1/categories/").json()] == ["PC games", "Steam"]
    assert_refused(client.delete(f"/api/v1/categories/{games.json()['id']}/"), 409, code="has_children")
    assert client.delete(f"/api/v1/categories/{steam.json()['id']}/").status_code == 204


def test_create_product_with_skus_sanitises_and_audits(alpha, alice):
    client = api(alpha, alice)
    body = {**PRODUCT, "description": '<p onmouseover="x()">Hi</p><script>steal()</script><img src=a onerror=b()>'}
    created = post(client, "/api/v1/products/", body)
    assert created.status_code == 201, created.content
    product = created.json()
    assert product["description"] == '<p>Hi</p><img src="a">'
    sku = product["skus"][0]
    assert sku["price_minor"] == 1999 and sku["currency"] == "CNY"
    assert sku["wholesale_prices"] == [{"min_quantity": 10, "unit_price_minor": 1800}]
    assert sku["stock"] == {"sku_id": sku["id"], "available": 0, "reserved": 0, "sold": 0}
    assert client.get(f"/api/v1/products/{product['id']}/").json() == product
    listing = client.get("/api/v1/products/?type=card_key&q=netflix").json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == product["id"]
    with tenant_context(alpha):
        assert {"catalog.product_created", "catalog.sku_created", "catalog.wholesale_prices_set"} <= set(
            AuditEvent.objects.values_list("action", flat=True))

    changed = patch(client, f"/api/v1/products/{product['id']}/", {"is_visible": False, "max_quantity": 5})
    assert changed.status_code == 200 and changed.json()["is_visible"] is False
    more = post(client, f"/api/v1/products/{product['id']}/skus/", {"name": "90 days", "price_minor": 4999})
    assert more.status_code == 201
    repriced = patch(client, f"/api/v1/skus/{sku['id']}/", {"price_minor": 2199, "wholesale_prices": []})
    assert repriced.status_code == 200 and repriced.json()["wholesale_prices"] == []
    assert repriced.json()["price_minor"] == 2199


@pytest.mark.parametrize("sku_change, field", [
    ({"price_minor": -1}, "skus[0].price_minor"),
    ({"price_minor": 10**30}, "skus[0].price_minor"),
    ({"price_minor": 19.99}, "skus[0].price_minor"),
    ({"price_minor": 20.0}, "skus[0].price_minor"),
    ({"price_minor": "12.34"}, "skus[0].price_minor"),
    ({"price_minor": True}, "skus[0].price_minor"),
    ({"price_minor": None}, "skus[0].price_minor"),
    ({"wholesale_prices": [{"min_quantity": 1, "unit_price_minor": 100}]}, "skus[0].wholesale_prices[0].min_quantity"),
    ({"wholesale_prices": [{"min_quantity": 5, "unit_price_minor": 5000}]},
     "skus[0].wholesale_prices[0].unit_price_minor"),
    ({"issue_order": "fifo"}, "skus[0].issue_order"),
])
def test_bad_sku_input_is_refused_and_nothing_is_written(alpha, alice, sku_change, field):
    body = {**PRODUCT, "skus": [{**PRODUCT["skus"][0], **sku_change}]}
    assert_refused(post(api(alpha, alice), "/api/v1/products/", body), 400, field=field)
    with tenant_context(alpha):
        assert not Product.objects.exists() and not SKU.objects.exists()


@pytest.mark.parametrize("change, field", [
    ({"category_id": 987654}, "category_id"),
    ({"category_id": "abc"}, "category_id"),
    ({"type": "gift"}, "type"),
    ({"min_quantity": 0}, "min_quantity"),
    ({"min_quantity": 5, "max_quantity": 2}, "max_quantity"),
    ({"max_quantity": 10**12}, "max_quantity"),
    ({"account_pattern": "(unclosed"}, "account_pattern"),
    ({"name": "x" * 121}, "name"),
])
def test_bad_product_input_is_refused(alpha, alice, change, field):
    assert_refused(post(api(alpha, alice), "/api/v1/products/", {**PRODUCT, **change}), 400, field=field)
    with tenant_context(alpha):
        assert not Product.objects.exists()


def test_a_category_of_another_shop_cannot_be_used(alpha, bravo, alice, bob):
    with tenant_context(bravo):
        foreign = catalog.category_create(name="Bravo only")
    with tenant_context(alpha):
        # make sure the id does not exist in alpha by chance
        Category.objects.filter(pk=foreign.pk).delete()
    assert_refused(post(api(alpha, alice), "/api/v1/products/", {**PRODUCT, "category_id": foreign.pk}), 400,
                   field="category_id")


def test_malformed_json_and_unknown_ids(alpha, alice):
    client = api(alpha, alice)
    broken = client.post("/api/v1/products/", "{not json", content_type="application/json")
    assert_refused(broken, 400)
    assert_refused(client.get("/api/v1/products/999999999/"), 404, code="not_found")
    assert_refused(client.get(f"/api/v1/products/{10**30}/"), 404)
    assert_refused(client.get("/api/v1/products/?category=abc"), 400, field="category")
    assert_refused(client.get("/api/v1/orders/?status=lost"), 400, field="status")
    assert_refused(client.get("/api/v1/products/?q=%00"), 400, field="q")  # PostgreSQL refuses NUL
    assert_refused(client.get("/api/v1/orders/%00/"), 404)


# --- stock ---------------------------------------------------------------------------

def test_import_keys_as_json_and_as_a_file_then_stock_counters(alpha, alice):
    client = api(alpha, alice)
    product = post(client, "/api/v1/products/", PRODUCT).json()
    sku_id = product["skus"][0]["id"]
    imported = post(client, f"/api/v1/skus/{sku_id}/keys/import/", {"keys": ["AAA-111", "BBB-222", "AAA-111", ""]})
    assert imported.status_code == 201, imported.content
    assert (imported.json()["imported"], imported.json()["duplicates"]) == (2, 1)
    upload = io.BytesIO(b"CCC-333\nDDD-444\nBBB-222\n")
    upload.name = "keys.txt"
    from_file = client.post(f"/api/v1/skus/{sku_id}/keys/import/", {"file": upload})
    assert from_file.status_code == 201, from_file.content
    assert (from_file.json()["imported"], from_file.json()["duplicates"]) == (2, 1)
    stock = client.get(f"/api/v1/skus/{sku_id}/stock/").json()
    assert stock == {"sku_id": sku_id, "available": 4, "reserved": 0, "sold": 0}
    with tenant_context(alpha):
        assert AuditEvent.objects.filter(action="cardkey.imported").count() == 2


def test_import_refusals(alpha, alice, carol):
    client = api(alpha, alice)
    product = post(client, "/api/v1/products/", PRODUCT).json()
    sku_id = product["skus"][0]["id"]
    assert_refused(post(client, f"/api/v1/skus/{sku_id}/keys/import/", {"keys": []}), 400, field="keys")
    assert_refused(post(client, f"/api/v1/skus/{sku_id}/keys/import/", {"keys": "AAA"}), 400, field="keys")
    assert_refused(post(client, "/api/v1/skus/999999/keys/import/", {"keys": ["A"]}), 404)
    not_xlsx = io.BytesIO(b"this is not a workbook")
    not_xlsx.name = "keys.xlsx"
    refused = client.post(f"/api/v1/skus/{sku_id}/keys/import/", {"file": not_xlsx, "format": "xlsx"})
    assert_refused(refused, 400, field="file")
    assert_refused(post(api(alpha, carol), f"/api/v1/skus/{sku_id}/keys/import/", {"keys": ["A-1"]}), 403)
    manual = post(client, "/api/v1/products/", {**PRODUCT, "type": "manual"}).json()
    assert_refused(post(client, f"/api/v1/skus/{manual['skus'][0]['id']}/keys/import/", {"keys": ["A-1"]}), 409,
                   code="wrong_type")
    assert client.get(f"/api/v1/skus/{sku_id}/stock/").json()["available"] == 0


# --- orders --------------------------------------------------------------------------

def order_body(sku_id, quantity=1, **extra):
    return {"lines": [{"sku_id": sku_id, "quantity": quantity}], "contact": "buyer@example.com",
            "query_password": "secret", **extra}


def test_place_order_with_idempotency_key(alpha, alice):
    with tenant_context(alpha):
        sku = make_product(keys=5, price=1500)
    client = api(alpha, alice)
    first = post(client, "/api/v1/orders/", order_body(sku.pk, 2), HTTP_IDEMPOTENCY_KEY="checkout-42")
    assert first.status_code == 201, first.content
    order = first.json()
    assert order["status"] == "pending_payment" and order["total_minor"] == 3000 and order["currency"] == "CNY"
    assert [e["kind"] for e in order["events"]] == ["order.created"]
    again = post(client, "/api/v1/orders/", order_body(sku.pk, 2), HTTP_IDEMPOTENCY_KEY="checkout-42")
    assert again.status_code == 200 and again.json()["number"] == order["number"]
    other = post(client, "/api/v1/orders/", order_body(sku.pk, 3), HTTP_IDEMPOTENCY_KEY="checkout-42")
    assert_refused(other, 409, field="Idempotency-Key", code="idempotency_key_reused")
    assert_refused(post(client, "/api/v1/orders/", order_body(sku.pk), HTTP_IDEMPOTENCY_KEY="bad key!"), 400,
                   field="Idempotency-Key")
    with tenant_context(alpha):
        assert Order.objects.count() == 1
        sku.refresh_from_db()
        assert sku.reserved_count == 2
    # without a key every POST is a new order
    assert post(client, "/api/v1/orders/", order_body(sku.pk), ).status_code == 201
    listed = client.get("/api/v1/orders/?contact=buyer@example.com&status=pending_payment").json()
    assert listed["count"] == 2
    assert client.get(f"/api/v1/orders/?number={order['number']}").json()["results"][0]["number"] == order["number"]


@pytest.mark.parametrize("line, field", [
    ({"quantity": -1}, "lines[0].quantity"),
    ({"quantity": 0}, "lines[0].quantity"),
    ({"quantity": 10**20}, "lines[0].quantity"),
    ({"quantity": 1.5}, "lines[0].quantity"),
    ({"quantity": "abc"}, "lines[0].quantity"),
    ({"quantity": True}, "lines[0].quantity"),
    ({"sku_id": 999999}, "lines[0].sku_id"),
    ({"sku_id": 10**30}, "lines[0].sku_id"),
    ({"sku_id": "x"}, "lines[0].sku_id"),
])
def test_bad_order_lines_are_refused_with_the_field(alpha, alice, line, field):
    with tenant_context(alpha):
        sku = make_product(keys=5)
    body = order_body(sku.pk)
    body["lines"][0].update(line)
    assert_refused(post(api(alpha, alice), "/api/v1/orders/", body), 400, field=field)
    with tenant_context(alpha):
        assert not Order.objects.exists()


def test_order_refusals_from_the_service(alpha, bravo, alice):
    with tenant_context(alpha):
        sku = make_product(keys=1, max_quantity=3)
    with tenant_context(bravo):
        foreign = make_product(keys=1, name="Bravo card")
    client = api(alpha, alice)
    assert_refused(post(client, "/api/v1/orders/", order_body(sku.pk, 4)), 400, field="lines.quantity")
    assert_refused(post(client, "/api/v1/orders/", order_body(sku.pk, 2)), 409, code="out_of_stock")
    assert_refused(post(client, "/api/v1/orders/", {**order_body(sku.pk), "contact": "nobody"}), 400,
                   field="contact")
    assert_refused(post(client, "/api/v1/orders/", {**order_body(sku.pk), "query_password": "1"}), 400,
                   field="query_password")
    assert_refused(post(client, "/api/v1/orders/", {**order_body(sku.pk), "lines": []}), 400, field="lines")
    with tenant_context(alpha):
        exists_here = SKU.objects.filter(pk=foreign.pk).exists()
    if not exists_here:  # ids are per schema, so the same number may exist in both shops
        assert_refused(post(client, "/api/v1/orders/", order_body(foreign.pk)), 400, field="lines[0].sku_id")


def test_order_detail_keys_refunds_and_cancel(alpha, alice, carol, paid_order, refund_gateway):
    order, _sku, secrets = paid_order(quantity=2, price=1500)
    client = api(alpha, alice)
    detail = client.get(f"/api/v1/orders/{order.number}/").json()
    assert detail["status"] == "delivered" and detail["total_minor"] == 3000
    assert [e["kind"] for e in detail["events"]] == ["order.created", "order.paid", "order.delivered"]
    assert detail["payments"][0]["provider"] == "test-refunds"
    assert not any(secret in str(detail) for secret in secrets)

    assert_refused(api(alpha, carol).get(f"/api/v1/orders/{order.number}/keys/"), 403)
    keys = client.get(f"/api/v1/orders/{order.number}/keys/").json()
    assert sorted(item["secret"] for item in keys["items"]) == sorted(secrets)
    with tenant_context(alpha):
        assert AuditEvent.objects.filter(action="order.keys_viewed", actor_email=alice.email).count() == 1

    url = f"/api/v1/orders/{order.number}/refunds/"
    assert_refused(post(client, url, {"amount_minor": 3001, "reason": "x"}), 400, field="amount_minor")
    assert_refused(post(client, url, {"amount_minor": 0}), 400, field="amount_minor")
    assert_refused(post(client, url, {"amount_minor": 10.5}), 400, field="amount_minor")
    assert_refused(post(client, url, {"amount_minor": 100, "ticket_id": 424242}), 400, field="ticket_id")
    assert_refused(post(api(alpha, carol), url, {"amount_minor": 100}), 403)
    partial = post(client, url, {"amount_minor": 1000, "reason": "late"})
    assert partial.status_code == 201 and partial.json()["refunded_minor"] == 1000
    assert partial.json()["status"] == "delivered"
    full = post(client, url, {"amount_minor": 2000, "reason": "rest"})
    assert full.status_code == 201 and full.json()["status"] == "refunded"
    assert [r["amount_minor"] for r in full.json()["payments"][0]["refunds"]] == [1000, 2000]
    assert [amount for _p, amount in refund_gateway.refunds] == [1000, 2000]
    assert_refused(post(client, url, {"amount_minor": 1}), 400, field="amount_minor")
    assert_refused(post(client, f"/api/v1/orders/{order.number}/cancel/"), 409, code="bad_transition")


def test_gateway_refusal_is_a_409_and_nothing_is_recorded(alpha, alice, paid_order, refund_gateway, monkeypatch):
    order, _sku, _secrets = paid_order()
    monkeypatch.setattr(refund_gateway, "refuse_with", "Card expired at the bank.")
    body = assert_refused(post(api(alpha, alice), f"/api/v1/orders/{order.number}/refunds/", {"amount_minor": 100}),
                          409, code="payment_failed")
    assert body["detail"] == "Card expired at the bank."
    with tenant_context(alpha):
        order.refresh_from_db()
        assert order.refunded_amount == 0


def test_cancel_a_pending_order(alpha, alice):
    with tenant_context(alpha):
        sku = make_product(keys=2)
    client = api(alpha, alice)
    number = post(client, "/api/v1/orders/", order_body(sku.pk, 2)).json()["number"]
    cancelled = post(client, f"/api/v1/orders/{number}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get(f"/api/v1/skus/{sku.pk}/stock/").json()["available"] == 2


def test_deliver_a_manual_line(alpha, alice, refund_gateway):
    from tests.commerce_helpers import pay

    with tenant_context(alpha):
        sku = make_product(type=Product.Type.MANUAL, name="Design")
        order = orders.order_place(lines=[orders.LineRequest(sku.pk, 1)], contact="b@example.com",
                                   query_password="1234")
        pay(order, provider="test-refunds")
        line_id = order.lines.get().pk
    client = api(alpha, alice)
    assert_refused(post(client, f"/api/v1/orders/{order.number}/lines/{line_id}/deliver/", {"note": ""}), 400,
                   field="note")
    done = post(client, f"/api/v1/orders/{order.number}/lines/{line_id}/deliver/", {"note": "Here you go"})
    assert done.status_code == 200 and done.json()["status"] == "delivered"


# --- tickets and customers ------------------------------------------------------------

def test_ticket_reply_reissue_refund_close(alpha, alice, paid_order, refund_gateway):
    order, _sku, secrets = paid_order(quantity=1, price=1000, keys=3)
    with tenant_context(alpha):
        ticket = orders.ticket_open(order=order, reason="invalid_key", message="Used already")
    client = api(alpha, alice)
    listing = client.get("/api/v1/tickets/?status=open").json()
    assert listing["results"][0]["id"] == ticket.pk and listing["results"][0]["order_number"] == order.number
    detail = client.get(f"/api/v1/tickets/{ticket.pk}/").json()
    assert detail["messages"][0]["body"] == "Used already"
    masked = detail["delivered_keys"][0]
    assert secrets[0] not in str(detail) and masked["masked"].startswith(secrets[0][:3])

    replied = post(client, f"/api/v1/tickets/{ticket.pk}/replies/", {"body": "Checking"})
    assert replied.status_code == 201 and replied.json()["status"] == "answered"
    assert_refused(post(client, f"/api/v1/tickets/{ticket.pk}/replies/", {"body": ""}), 400, field="body")
    assert_refused(post(client, f"/api/v1/tickets/{ticket.pk}/reissue/", {"delivered_key_id": 999999}), 404,
                   field="delivered_key_id")
    reissued = post(client, f"/api/v1/tickets/{ticket.pk}/reissue/", {"delivered_key_id": masked["delivered_key_id"]})
    assert reissued.status_code == 201
    assert [k["replaced"] for k in reissued.json()["delivered_keys"]] == [True, False]
    refunded = post(client, f"/api/v1/orders/{order.number}/refunds/",
                    {"amount_minor": 300, "reason": "sorry", "ticket_id": ticket.pk})
    assert refunded.status_code == 201
    closed = post(client, f"/api/v1/tickets/{ticket.pk}/close/")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert any("Refunded" in m["body"] for m in closed.json()["messages"])
    assert_refused(post(client, f"/api/v1/tickets/{ticket.pk}/replies/", {"body": "more"}), 409, code="closed")
    assert_refused(client.get("/api/v1/tickets/?status=nope"), 400, field="status")


def test_customers_with_wallet_balance(alpha, alice):
    with tenant_context(alpha):
        customer = customer_register(login="member@example.com", password="a-long-passphrase-1")
        wallet_credit(customer=customer, amount=5000, kind="topup", reference="T-1")
    client = api(alpha, alice)
    listing = client.get("/api/v1/customers/?q=member").json()
    assert listing["results"][0]["wallet_balance_minor"] == 5000
    detail = client.get(f"/api/v1/customers/{customer.pk}/").json()
    assert detail["wallet_entries"][0]["amount_minor"] == 5000 and detail["wallet_entries"][0]["reference"] == "T-1"
    assert_refused(client.get("/api/v1/customers/999999/"), 404)


# --- the schema ----------------------------------------------------------------------

def test_openapi_schema_describes_the_commerce_endpoints(alpha):
    response = Client(HTTP_HOST=host_of(alpha)).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/json") else None
    if schema is None:
        import yaml

        schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    for path in ("/api/v1/categories/", "/api/v1/products/", "/api/v1/products/{id}/", "/api/v1/skus/{id}/stock/",
                 "/api/v1/skus/{id}/keys/import/", "/api/v1/orders/", "/api/v1/orders/{number}/",
                 "/api/v1/orders/{number}/keys/", "/api/v1/orders/{number}/refunds/", "/api/v1/orders/{number}/cancel/",
                 "/api/v1/tickets/", "/api/v1/tickets/{id}/", "/api/v1/tickets/{id}/replies/",
                 "/api/v1/tickets/{id}/reissue/", "/api/v1/tickets/{id}/close/", "/api/v1/customers/",
                 "/api/v1/customers/{id}/"):
        assert path in paths, path
    create_order = paths["/api/v1/orders/"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in create_order["parameters"])
    sku_schema = schema["components"]["schemas"]["SKUOutput"]["properties"]
    assert sku_schema["price_minor"]["type"] == "integer"
    import_body = paths["/api/v1/skus/{id}/keys/import/"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(import_body)


# --- no input makes a 500 ------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(lines=st.lists(st.fixed_dictionaries({"sku_id": JSON_VALUES, "quantity": JSON_VALUES,
                                             "account": JSON_VALUES}), max_size=3) | JSON_VALUES,
       contact=JSON_VALUES | st.just("buyer@example.com"), password=JSON_VALUES | st.just("secret"))
def test_random_order_bodies_never_cause_a_server_error(alpha, alice, lines, contact, password):
    response = post(api(alpha, alice), "/api/v1/orders/", {"lines": lines, "contact": contact,
                                                            "query_password": password})
    assert response.status_code < 500
    if response.status_code >= 400:
        assert {"detail", "field", "code"} <= set(response.json())


@FUZZ
@given(name=JSON_VALUES | st.just("Card"), price=JSON_VALUES, tiers=JSON_VALUES, extra=st.dictionaries(
    st.sampled_from(["type", "category_id", "min_quantity", "max_quantity", "sort_order", "description",
                     "account_pattern", "is_visible"]), JSON_VALUES, max_size=3))
def test_random_product_bodies_never_cause_a_server_error(alpha, alice, name, price, tiers, extra):
    body = {"name": name, "skus": [{"price_minor": price, "wholesale_prices": tiers}], **extra}
    response = post(api(alpha, alice), "/api/v1/products/", body)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert {"detail", "field", "code"} <= set(response.json())
