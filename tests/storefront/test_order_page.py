"""The order page: ownership, delivered keys, polling, pay/cancel, tickets, lookup."""
from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from tests.storefront.conftest import PAY_URL, mark_paid

pytestmark = pytest.mark.django_db


def get_order(shop, number):
    from platform_core.orders.models import Order

    with tenant_context(shop):
        order = Order.objects.get(number=number)
    connection.set_schema_to_public()
    return order


def test_order_page_belongs_to_the_buyers_browser(shop_client, alpha, buy):
    client, number = buy()
    own = client.get(f"/order/{number}/")
    assert own.status_code == 200
    html = own.content.decode()
    assert "Waiting for payment" in html and "Steam Wallet Code 30 days" in html and "¥10.00" in html
    assert own["Cache-Control"].count("no-store") == 1
    stranger = shop_client(alpha)
    response = stranger.get(f"/order/{number}/")
    assert response.status_code == 404
    assert number not in response.content.decode() and "buyer@example.com" not in response.content.decode()
    # the same answer as for a number that does not exist
    assert stranger.get("/order/000000000000000000/").status_code == 404
    assert stranger.get(f"/order/{number}/status.json").status_code == 404
    assert stranger.post(f"/order/{number}/cancel/").status_code == 404
    assert stranger.post(f"/order/{number}/ticket/", {"reason": "other", "message": "x"}).status_code == 404
    assert get_order(alpha, number).status == "pending_payment"


def test_order_of_one_shop_is_not_found_in_another(shop_client, alpha, bravo, buy):
    client, number = buy()
    order = get_order(alpha, number)
    other = shop_client(bravo)
    assert other.get(f"/order/{number}/", {"t": order.access_token}).status_code == 404


def test_access_token_link_opens_the_order_in_any_browser(shop_client, alpha, buy):
    _client, number = buy()
    order = get_order(alpha, number)
    browser = shop_client(alpha)
    assert browser.get(f"/order/{number}/", {"t": "wrong-token"}).status_code == 404
    assert browser.get(f"/order/{number}/", {"t": order.access_token}).status_code == 200
    # remembered in the session from now on, without the token in the address
    assert browser.get(f"/order/{number}/").status_code == 200
    assert browser.get(f"/order/{number}/status.json").json() == {"status": "pending_payment"}


def test_delivered_keys_appear_with_copy_buttons(shop_client, alpha, catalog, buy):
    client, number = buy(quantity=2)
    assert client.get(f"/order/{number}/status.json").json() == {"status": "pending_payment"}
    html = client.get(f"/order/{number}/").content.decode()
    assert 'data-poll="/order/' in html
    assert catalog.keys["sku30"][0] not in html
    order = mark_paid(alpha, number)
    assert order.status == "delivered"
    # the polling endpoint sees the change at once; the page then reloads
    assert client.get(f"/order/{number}/status.json").json() == {"status": "delivered"}
    html = client.get(f"/order/{number}/").content.decode()
    assert "Delivered" in html
    assert catalog.keys["sku30"][0] in html and catalog.keys["sku30"][1] in html
    assert html.count("data-copy=") == 3  # one per key plus "copy all"
    assert "data-poll=" not in html  # nothing left to wait for
    assert "Report a problem" in html and "Cancel order" not in html and "Pay now" not in html
    # a stranger still sees nothing
    stranger = shop_client(alpha).get(f"/order/{number}/")
    assert stranger.status_code == 404 and catalog.keys["sku30"][0] not in stranger.content.decode()


def test_status_json_is_small_and_not_cached(shop_client, alpha, buy):
    client, number = buy()
    response = client.get(f"/order/{number}/status.json")
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    assert response.json() == {"status": "pending_payment"}


def test_pay_again_from_the_order_page(shop_client, alpha, buy, providers):
    client, number = buy()
    html = client.get(f"/order/{number}/").content.decode()
    assert "Pay now" in html and "Fake Pay" in html
    response = client.post(f"/order/{number}/pay/", {"payment": "fake-redirect"})
    assert response.status_code == 302 and response["Location"].startswith(PAY_URL)
    bogus = client.post(f"/order/{number}/pay/", {"payment": "nope"})
    assert bogus.status_code == 302 and bogus["Location"] == f"/order/{number}/"


def test_cancel_a_pending_order(shop_client, alpha, catalog, buy):
    client, number = buy()
    assert client.get(f"/order/{number}/cancel/").status_code == 405
    response = client.post(f"/order/{number}/cancel/")
    assert response.status_code == 302
    assert get_order(alpha, number).status == "cancelled"
    html = client.get(f"/order/{number}/").content.decode()
    assert "Cancelled" in html and "The order is cancelled." in html and "Pay now" not in html
    with tenant_context(alpha):
        from platform_core.catalog.models import SKU

        assert SKU.objects.get(pk=catalog.sku30.pk).reserved_count == 0
    connection.set_schema_to_public()
    # cancelling twice is a message, not an error page
    again = client.post(f"/order/{number}/cancel/", follow=True)
    assert again.status_code == 200 and "cannot" in again.content.decode()


def test_ticket_on_a_paid_order(shop_client, alpha, buy):
    from platform_core.orders.models import Ticket
    from platform_core.orders.services import ticket_reply

    client, number = buy()
    # unpaid: no after-sales form, and posting one is refused clearly
    assert "Report a problem" not in client.get(f"/order/{number}/").content.decode()
    early = client.post(f"/order/{number}/ticket/", {"reason": "invalid_key", "message": "help"})
    assert early.status_code == 409 and "After-sales help is for paid orders." in early.content.decode()
    mark_paid(alpha, number)
    empty = client.post(f"/order/{number}/ticket/", {"reason": "invalid_key", "message": "  "})
    assert empty.status_code == 400
    bad_reason = client.post(f"/order/{number}/ticket/", {"reason": "free money", "message": "x"})
    assert bad_reason.status_code == 400
    response = client.post(f"/order/{number}/ticket/", {"reason": "invalid_key", "message": "Key says used <b>!"})
    assert response.status_code == 302
    html = client.get(f"/order/{number}/").content.decode()
    assert "Thanks — the shop will answer here." in html
    assert "The key does not work" in html and "Key says used &lt;b&gt;!" in html
    with tenant_context(alpha):
        ticket = Ticket.objects.get(order__number=number)
        ticket_reply(ticket=ticket, body="Which key exactly?", from_staff=True)
    connection.set_schema_to_public()
    html = client.get(f"/order/{number}/").content.decode()
    assert "Which key exactly?" in html and "Answered" in html
    reply = client.post(f"/order/{number}/ticket/{ticket.pk}/reply/", {"body": "The first one."})
    assert reply.status_code == 302
    with tenant_context(alpha):
        ticket.refresh_from_db()
        assert ticket.status == "open"
        assert list(ticket.messages.values_list("from_staff", "body")) == [
            (False, "Key says used <b>!"), (True, "Which key exactly?"), (False, "The first one.")]
    connection.set_schema_to_public()
    # a ticket id of another order is not found
    _other_client, other_number = buy(contact="other@example.com")
    assert client.post(f"/order/{other_number}/ticket/{ticket.pk}/reply/", {"body": "x"}).status_code == 404


def test_reply_to_a_closed_ticket_is_refused_clearly(shop_client, alpha, buy):
    from platform_core.orders.models import Ticket
    from platform_core.orders.services import ticket_close

    client, number = buy()
    mark_paid(alpha, number)
    client.post(f"/order/{number}/ticket/", {"reason": "other", "message": "hello"})
    with tenant_context(alpha):
        ticket = Ticket.objects.get(order__number=number)
        ticket_close(ticket=ticket)
    connection.set_schema_to_public()
    response = client.post(f"/order/{number}/ticket/{ticket.pk}/reply/", {"body": "still there?"})
    assert response.status_code == 409 and "This ticket is closed." in response.content.decode()


# --- lookup ------------------------------------------------------------------------------

def test_lookup_with_the_right_details_opens_the_order(shop_client, alpha, buy):
    _client, number = buy(contact="Buyer@Example.com", password="s3cret-pw")
    browser = shop_client(alpha)
    assert browser.get(f"/order/{number}/").status_code == 404
    response = browser.post("/lookup/", {"number": number, "contact": "buyer@example.com",
                                         "query_password": "s3cret-pw"})
    assert response.status_code == 302 and response["Location"] == f"/order/{number}/"
    assert browser.get(f"/order/{number}/").status_code == 200


@pytest.mark.parametrize("change", [
    {"query_password": "wrong-pw"},
    {"contact": "someone@example.com"},
    {"contact": "not a contact"},
    {"number": "000000000000000000"},
    {"number": ""},
])
def test_lookup_with_wrong_details_gives_one_generic_answer(shop_client, alpha, catalog, buy, change):
    _client, number = buy(quantity=2)
    mark_paid(alpha, number)
    data = {"number": number, "contact": "buyer@example.com", "query_password": "s3cret-pw", **change}
    browser = shop_client(alpha)
    response = browser.post("/lookup/", data)
    html = response.content.decode()
    assert response.status_code == 400
    assert "No order matches these details." in html
    assert catalog.keys["sku30"][0] not in html and "Steam Wallet Code" not in html
    assert "buyer@example.com" not in html and "Delivered" not in html
    assert browser.get(f"/order/{number}/").status_code == 404


def test_lookup_is_rate_limited_per_ip(shop_client, alpha, buy):
    _client, number = buy()
    browser = shop_client(alpha)
    for _ in range(10):
        assert browser.post("/lookup/", {"number": number, "contact": "buyer@example.com",
                                         "query_password": "nope"}).status_code == 400
    limited = browser.post("/lookup/", {"number": number, "contact": "buyer@example.com",
                                        "query_password": "s3cret-pw"})
    assert limited.status_code == 429 and "Too many attempts" in limited.content.decode()
    assert browser.get(f"/order/{number}/").status_code == 404
    # another address is not affected
    other = shop_client(alpha)
    ok = other.post("/lookup/", {"number": number, "contact": "buyer@example.com", "query_password": "s3cret-pw"},
                    REMOTE_ADDR="10.1.2.3")
    assert ok.status_code == 302


def test_lookup_page_has_csrf_and_a_form(shop_client, alpha):
    html = shop_client(alpha).get("/lookup/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in html and 'name="query_password"' in html
