"""Shop console pages of the commerce core: catalog, orders, tickets, customers,
checkout rules. Members look, owners and admins change, outsiders are sent to sign in."""
from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from platform_core.audit.models import AuditEvent
from platform_core.catalog import services as catalog
from platform_core.catalog.models import SKU, Category, Product, WholesalePrice
from platform_core.customers.services import customer_register, wallet_credit
from platform_core.orders import services as orders
from platform_core.orders.models import Order, OrderSettings, Ticket
from platform_core.payments.models import Refund
from tests.commerce_helpers import make_product


def product_post(**overrides):
    """The add/change form of a product with one SKU row, as the browser posts it."""
    data = {
        "name": "Steam card", "type": "card_key", "category": "", "description": "<p>Fast</p>",
        "is_visible": "on", "sort_order": "0", "min_quantity": "1", "max_quantity": "100",
        "low_stock_threshold": "0", "account_pattern": "", "account_label": "",
        "skus-TOTAL_FORMS": "1", "skus-INITIAL_FORMS": "0", "skus-MIN_NUM_FORMS": "0", "skus-MAX_NUM_FORMS": "1000",
        "skus-0-name": "30 days", "skus-0-price": "12.34", "skus-0-wholesale": "", "skus-0-is_active": "on",
        "skus-0-sort_order": "0", "skus-0-issue_order": "oldest",
    }
    data.update(overrides)
    return data


def console_pages(alpha):
    """Every console page of the commerce core, with one object of each kind."""
    with tenant_context(alpha):
        category = catalog.category_create(name="Games")
        sku = make_product(keys=3)
        order = orders.order_place(lines=[orders.LineRequest(sku.pk, 1)], contact="b@example.com",
                                   query_password="1234")
        customer = customer_register(login="member@example.com", password="a-long-passphrase-1")
    return [
        "/manage/catalog/category/", f"/manage/catalog/category/{category.pk}/change/",
        "/manage/catalog/product/", f"/manage/catalog/product/{sku.product_id}/change/",
        "/manage/orders/order/", f"/manage/orders/order/{order.pk}/change/",
        "/manage/orders/ticket/", "/manage/customers/customer/", f"/manage/customers/customer/{customer.pk}/change/",
    ]


def test_console_pages_render_for_the_owner(shop_client, alpha, alice):
    client = shop_client(alpha, alice)
    for url in console_pages(alpha) + ["/manage/catalog/product/add/", "/manage/catalog/category/add/"]:
        response = client.get(url)
        assert response.status_code == 200, url


def test_console_pages_send_non_members_to_sign_in(shop_client, alpha, bob):
    client = shop_client(alpha, bob)  # bob owns bravo, not alpha
    for url in console_pages(alpha) + ["/manage/orders/ordersettings/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/manage/login/" in response["Location"], url


def test_staff_role_sees_but_cannot_change(shop_client, alpha, carol, paid_order):
    order, _sku, _keys = paid_order()
    with tenant_context(alpha):
        ticket = orders.ticket_open(order=order, reason="invalid_key", message="Does not work")
    client = shop_client(alpha, carol)
    for url in console_pages(alpha) + [f"/manage/orders/ticket/{ticket.pk}/change/"]:
        assert client.get(url).status_code == 200, url
    assert client.post("/manage/catalog/product/add/", product_post()).status_code == 403
    assert client.post("/manage/catalog/category/add/", {"name": "X", "sort_order": "0"}).status_code == 403
    for url in (f"/manage/orders/order/{order.pk}/refund/", f"/manage/orders/order/{order.pk}/cancel/",
                f"/manage/orders/ticket/{ticket.pk}/reply/", f"/manage/orders/ticket/{ticket.pk}/reissue/",
                f"/manage/orders/ticket/{ticket.pk}/close/"):
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"amount": "1.00", "reason": "x", "body": "x"}).status_code == 403, url
    settings_page = client.get("/manage/orders/ordersettings/", follow=True)
    assert settings_page.status_code == 200
    with tenant_context(alpha):
        settings_id = OrderSettings.objects.get().pk
    refused = client.post(f"/manage/orders/ordersettings/{settings_id}/change/", {"reservation_minutes": "5"})
    assert refused.status_code == 403
    with tenant_context(alpha):
        order.refresh_from_db()
        assert order.refunded_amount == 0 and not Product.objects.filter(name="Steam card").exists()
        assert Ticket.objects.get(pk=ticket.pk).status == "open"


def test_product_with_a_sku_is_created_through_the_services_and_the_description_is_sanitised(
        shop_client, alpha, alice):
    client = shop_client(alpha, alice)
    description = ('<p onclick="steal()">Fast <b>delivery</b></p><script>alert(1)</script>'
                   '<style>body{display:none}</style><img src="https://cdn.example/a.png" onerror="x()" alt="card">'
                   '<a href="javascript:alert(1)">x</a>')
    response = client.post("/manage/catalog/product/add/",
                           product_post(description=description, **{"skus-0-wholesale": "10: 11.50, 100: 9"}))
    assert response.status_code == 302, response.content.decode()[:3000]
    with tenant_context(alpha):
        product = Product.objects.get(name="Steam card")
        assert "<script" not in product.description and "alert" not in product.description
        assert "onclick" not in product.description and "onerror" not in product.description
        assert "<style" not in product.description and "javascript:" not in product.description
        assert "<b>delivery</b>" in product.description and 'src="https://cdn.example/a.png"' in product.description
        sku = product.skus.get()
        assert sku.price == 1234 and sku.name == "30 days"
        assert list(WholesalePrice.objects.filter(sku=sku).values_list("min_quantity", "unit_price")) == [
            (10, 1150), (100, 900)]
        actions = set(AuditEvent.objects.values_list("action", flat=True))
        assert {"catalog.product_created", "catalog.sku_created", "catalog.wholesale_prices_set"} <= actions

    # the change page shows the price in major units and the stock counters
    page = client.get(f"/manage/catalog/product/{product.pk}/change/").content.decode()
    assert 'value="12.34"' in page and "¥12.34" in page and "/manage/stock/" in page
    changed = client.post(f"/manage/catalog/product/{product.pk}/change/", product_post(**{
        "skus-INITIAL_FORMS": "1", "skus-0-id": str(sku.pk), "skus-0-product": str(product.pk),
        "skus-0-price": "15", "skus-0-wholesale": "10: 11.50, 100: 9.00"}))
    assert changed.status_code == 302
    with tenant_context(alpha):
        sku.refresh_from_db()
        assert sku.price == 1500
        assert AuditEvent.objects.filter(action="catalog.sku_updated").exists()


@pytest.mark.parametrize("price, message", [
    ("12.345", "at most 2 decimals"), ("-1", "zero or more"), ("abc", "amount such as"), ("1e3", "amount such as"),
    ("NaN", "amount such as"), ("99999999999999", "up to"),
])
def test_prices_are_parsed_strictly(shop_client, alpha, alice, price, message):
    response = shop_client(alpha, alice).post("/manage/catalog/product/add/", product_post(**{"skus-0-price": price}))
    assert response.status_code == 200 and message in response.content.decode()
    with tenant_context(alpha):
        assert not Product.objects.filter(name="Steam card").exists()


def test_wholesale_tier_above_the_price_and_quantity_range_are_refused(shop_client, alpha, alice):
    client = shop_client(alpha, alice)
    above = client.post("/manage/catalog/product/add/", product_post(**{"skus-0-wholesale": "10: 20.00"}))
    assert above.status_code == 200 and "would never apply" in above.content.decode()
    inverted = client.post("/manage/catalog/product/add/", product_post(min_quantity="5", max_quantity="2"))
    assert inverted.status_code == 200 and "cannot be below the minimum" in inverted.content.decode()
    with tenant_context(alpha):
        assert not Product.objects.exists()


def test_a_product_needs_a_sku(shop_client, alpha, alice):
    response = shop_client(alpha, alice).post("/manage/catalog/product/add/", product_post(**{"skus-TOTAL_FORMS": "0"}))
    assert response.status_code == 200
    with tenant_context(alpha):
        assert not Product.objects.exists()


def test_categories_have_two_levels(shop_client, alpha, alice):
    client = shop_client(alpha, alice)
    assert client.post("/manage/catalog/category/add/", {"name": "Games", "sort_order": "0",
                                                         "is_visible": "on"}).status_code == 302
    with tenant_context(alpha):
        games = Category.objects.get(name="Games")
        steam = catalog.category_create(name="Steam", parent=games)
    # the form only offers top-level parents, and the service refuses a third level anyway
    third = client.post("/manage/catalog/category/add/", {"name": "Deep", "parent": str(steam.pk), "sort_order": "0"})
    assert third.status_code == 200 and not Category.objects.filter(name="Deep").exists()
    with tenant_context(alpha), pytest.raises(catalog.CatalogError, match="two levels"):
        catalog.category_create(name="Deep", parent=steam)
    with tenant_context(alpha), pytest.raises(catalog.CatalogError, match="sub-categories"):
        catalog.category_update(category=games, changes={"parent": catalog.category_create(name="Other")})


def test_order_page_masks_keys_and_lists_history_and_payments(shop_client, alpha, alice, paid_order):
    order, _sku, secrets = paid_order()
    client = shop_client(alpha, alice)
    listing = client.get("/manage/orders/order/?status=delivered").content.decode()
    assert order.number in listing and "¥30.00" in listing
    assert client.get(f"/manage/orders/order/?q={order.number}").content.decode().count(order.number) >= 1
    page = client.get(f"/manage/orders/order/{order.pk}/change/").content.decode()
    for secret in secrets:
        assert secret not in page
        assert secret[:3] in page and secret[-2:] in page
    assert "order.paid" in page and "order.delivered" in page and "test-refunds" in page
    assert f"/manage/orders/order/{order.pk}/refund/" in page
    assert f"/manage/orders/order/{order.pk}/cancel/" not in page  # paid orders are not cancelled


def test_refund_partially_then_fully_from_the_console(shop_client, alpha, alice, paid_order, refund_gateway):
    order, _sku, _keys = paid_order(quantity=2, price=1500)
    client = shop_client(alpha, alice)
    url = f"/manage/orders/order/{order.pk}/refund/"
    form = client.get(url).content.decode()
    assert 'value="30.00"' in form  # the whole remainder is offered
    too_much = client.post(url, {"amount": "30.01", "reason": "oops"})
    assert too_much.status_code == 200 and "exceeds" in too_much.content.decode()
    bad = client.post(url, {"amount": "5.001", "reason": "x"})
    assert bad.status_code == 200 and "at most 2 decimals" in bad.content.decode()
    partial = client.post(url, {"amount": "5.00", "reason": "one key was slow"})
    assert partial.status_code == 302
    with tenant_context(alpha):
        order.refresh_from_db()
        assert (order.status, order.refunded_amount) == ("delivered", 500)
    full = client.post(url, {"amount": "25.00", "reason": "buyer changed their mind"})
    assert full.status_code == 302
    with tenant_context(alpha):
        order.refresh_from_db()
        assert (order.status, order.refunded_amount) == ("refunded", 3000)
        assert sorted(Refund.objects.filter(payment__order=order).values_list("amount", flat=True)) == [500, 2500]
        assert AuditEvent.objects.filter(action="order.refunded", actor_email=alice.email).count() == 2
    assert [amount for _payment, amount in refund_gateway.refunds] == [500, 2500]


def test_a_refund_the_gateway_refuses_is_shown_and_nothing_is_recorded(shop_client, alpha, alice, paid_order,
                                                                       refund_gateway, monkeypatch):
    order, _sku, _keys = paid_order()
    monkeypatch.setattr(refund_gateway, "refuse_with", "Gateway says no.")
    response = shop_client(alpha, alice).post(f"/manage/orders/order/{order.pk}/refund/",
                                              {"amount": "1.00", "reason": "x"})
    assert response.status_code == 200 and "Gateway says no." in response.content.decode()
    with tenant_context(alpha):
        order.refresh_from_db()
        assert order.refunded_amount == 0 and not Refund.objects.filter(payment__order=order).exists()


def test_cancel_a_pending_order_returns_its_keys(shop_client, alpha, alice):
    with tenant_context(alpha):
        sku = make_product(keys=2)
        order = orders.order_place(lines=[orders.LineRequest(sku.pk, 2)], contact="b@example.com",
                                   query_password="1234")
    client = shop_client(alpha, alice)
    assert f"/manage/orders/order/{order.pk}/cancel/" in client.get(f"/manage/orders/order/{order.pk}/change/"
                                                                     ).content.decode()
    assert client.post(f"/manage/orders/order/{order.pk}/cancel/").status_code == 302
    with tenant_context(alpha):
        order.refresh_from_db()
        sku.refresh_from_db()
        assert order.status == "cancelled" and (sku.available_count, sku.reserved_count) == (2, 0)
    again = client.post(f"/manage/orders/order/{order.pk}/cancel/")
    assert again.status_code == 200 and "cannot become cancelled" in again.content.decode()


def test_deliver_a_manual_line_by_hand(shop_client, alpha, alice, refund_gateway):
    from tests.commerce_helpers import pay

    with tenant_context(alpha):
        sku = make_product(type=Product.Type.MANUAL, name="Custom design")
        order = orders.order_place(lines=[orders.LineRequest(sku.pk, 1)], contact="b@example.com",
                                   query_password="1234")
        pay(order, provider="test-refunds")
        order.refresh_from_db()
        assert order.status == "processing"
        line = order.lines.get()
    client = shop_client(alpha, alice)
    url = f"/manage/orders/order/{order.pk}/deliver/"
    assert "Custom design" in client.get(url).content.decode()
    assert client.post(url, {"line": str(line.pk), "note": "Download at https://example.com/x"}).status_code == 302
    with tenant_context(alpha):
        order.refresh_from_db()
        assert order.status == "delivered"
        assert [item.secret for item in orders.order_delivered_items(order)] == ["Download at https://example.com/x"]


def test_ticket_thread_reply_reissue_refund_close(shop_client, alpha, alice, paid_order, refund_gateway):
    order, sku, secrets = paid_order(quantity=1, price=1000, keys=3)
    with tenant_context(alpha):
        ticket = orders.ticket_open(order=order, reason="invalid_key", message="The key says already used")
        answered = orders.ticket_open(order=order, reason="other", message="Another question")
        orders.ticket_reply(ticket=answered, body="Answered", actor=alice, from_staff=True)
    client = shop_client(alpha, alice)
    listing = client.get("/manage/orders/ticket/").content.decode()
    assert listing.index(f"/manage/orders/ticket/{ticket.pk}/change/") < listing.index(
        f"/manage/orders/ticket/{answered.pk}/change/")  # open before answered
    page = client.get(f"/manage/orders/ticket/{ticket.pk}/change/").content.decode()
    assert "The key says already used" in page and secrets[0] not in page
    assert client.post(f"/manage/orders/ticket/{ticket.pk}/reply/", {"body": "Looking into it"}).status_code == 302

    reissue_url = f"/manage/orders/ticket/{ticket.pk}/reissue/"
    form = client.get(reissue_url).content.decode()
    assert secrets[0] not in form and secrets[0][:3] in form
    with tenant_context(alpha):
        delivered_id = orders.order_delivered_items(order)[0].delivered_key_id
    assert client.post(reissue_url, {"delivered_key": str(delivered_id)}).status_code == 302
    with tenant_context(alpha):
        items = orders.order_delivered_items(order)
        assert [item.replaced for item in items] == [True, False] and items[1].secret != secrets[0]

    refund_url = f"/manage/orders/ticket/{ticket.pk}/refund/"
    assert client.post(refund_url, {"amount": "2.50", "reason": "for the trouble"}).status_code == 302
    assert client.post(f"/manage/orders/ticket/{ticket.pk}/close/").status_code == 302
    with tenant_context(alpha):
        ticket.refresh_from_db()
        order.refresh_from_db()
        assert ticket.status == "closed" and order.refunded_amount == 250
        bodies = list(ticket.messages.values_list("body", flat=True))
        assert "Looking into it" in bodies and any("Refunded" in body for body in bodies)
        assert AuditEvent.objects.filter(action="ticket.closed").exists()
    closed_page = client.get(f"/manage/orders/ticket/{ticket.pk}/change/").content.decode()
    assert f"/manage/orders/ticket/{ticket.pk}/reply/" not in closed_page


def test_customers_list_shows_wallet_balance_and_ledger(shop_client, alpha, alice):
    with tenant_context(alpha):
        customer = customer_register(login="member@example.com", password="a-long-passphrase-1")
        wallet_credit(customer=customer, amount=12345, kind="topup", reference="T1")
    client = shop_client(alpha, alice)
    assert "¥123.45" in client.get("/manage/customers/customer/").content.decode()
    page = client.get(f"/manage/customers/customer/{customer.pk}/change/").content.decode()
    assert "Wallet ledger" in page and "T1" in page
    assert client.post(f"/manage/customers/customer/{customer.pk}/change/", {"name": "x"}).status_code == 403


def test_order_settings_are_edited_by_the_owner_within_bounds(shop_client, alpha, alice):
    client = shop_client(alpha, alice)
    page = client.get("/manage/orders/ordersettings/", follow=True)
    assert page.status_code == 200 and "reservation" in page.content.decode().lower()
    with tenant_context(alpha):
        settings_id = OrderSettings.objects.get().pk
    url = f"/manage/orders/ordersettings/{settings_id}/change/"
    values = {"reservation_minutes": "30", "max_open_orders_per_contact": "2", "max_open_orders_per_ip": "5",
              "awaiting_stock_refund_hours": "48"}
    assert client.post(url, {**values, "reservation_minutes": "0"}).status_code == 200
    assert client.post(url, values).status_code == 302
    with tenant_context(alpha):
        current = OrderSettings.current()
        assert (current.reservation_minutes, current.awaiting_stock_refund_hours) == (30, 48)
        assert AuditEvent.objects.filter(action="orders.settings_changed").exists()


def test_pending_order_refund_is_refused_without_a_payment(alpha, alice):
    with tenant_context(alpha):
        sku = make_product(keys=1)
        order = orders.order_place(lines=[orders.LineRequest(sku.pk, 1)], contact="b@example.com",
                                   query_password="1234")
        with pytest.raises(orders.OrderError, match="no completed payment"):
            orders.order_refund(order=order, amount=100, reason="", actor=alice)
        assert Order.objects.get(pk=order.pk).refunded_amount == 0
        assert SKU.objects.get(pk=sku.pk).reserved_count == 1
