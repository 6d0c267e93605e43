"""Customer accounts: register, sign in and out, my orders, wallet and top-ups."""
from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from tests.storefront.conftest import PAY_URL, FakeInstantProvider, FakeRedirectProvider, mark_paid, token_of

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-buyer-password"


def register(client, login="member@example.com", password=PASSWORD):
    return client.post("/account/register/", {"login": login, "password": password, "name": "Mia"})


def test_register_signs_in_and_shows_the_account(shop_client, alpha):
    client = shop_client(alpha)
    assert client.get("/account/").status_code == 302  # to the sign-in page
    assert client.get("/account/")["Location"] == "/account/login/?next=%2Faccount%2F"
    response = register(client)
    assert response.status_code == 302 and response["Location"] == "/account/"
    html = client.get("/account/").content.decode()
    assert "Mia" in html and "¥0.00" in html and "No orders yet." in html
    assert "Top-ups are not available in this shop." in html
    with tenant_context(alpha):
        from platform_core.customers.models import Customer

        assert Customer.objects.filter(email="member@example.com").exists()


def test_register_errors_are_shown(shop_client, alpha):
    client = shop_client(alpha)
    weak = register(client, password="123")
    assert weak.status_code == 400 and "too short" in weak.content.decode()
    bad = register(client, login="nobody")
    assert bad.status_code == 400 and "Enter a valid e-mail address or phone number." in bad.content.decode()
    assert register(client).status_code == 302
    other = shop_client(alpha)
    taken = register(other, login="MEMBER@example.com")
    assert taken.status_code == 400 and "exists; sign in instead" in taken.content.decode()


def test_accounts_belong_to_one_shop(shop_client, alpha, bravo):
    register(shop_client(alpha))
    response = shop_client(bravo).post("/account/login/", {"login": "member@example.com", "password": PASSWORD})
    assert response.status_code == 400


def test_login_and_logout(shop_client, alpha):
    register(shop_client(alpha))
    client = shop_client(alpha)
    wrong = client.post("/account/login/", {"login": "member@example.com", "password": "nope"})
    assert wrong.status_code == 400 and "Wrong e-mail/phone or password." in wrong.content.decode()
    ok = client.post("/account/login/", {"login": "member@example.com", "password": PASSWORD, "next": "/lookup/"})
    assert ok.status_code == 302 and ok["Location"] == "/lookup/"
    assert client.get("/account/").status_code == 200
    evil = shop_client(alpha).post("/account/login/", {"login": "member@example.com", "password": PASSWORD,
                                                        "next": "https://evil.example/"})
    assert evil["Location"] == "/account/"
    assert client.get("/account/logout/").status_code == 405  # sign-out is a POST
    assert client.post("/account/logout/").status_code == 302
    assert client.get("/account/").status_code == 302


def test_login_is_rate_limited(shop_client, alpha):
    register(shop_client(alpha))
    client = shop_client(alpha)
    for _ in range(10):
        client.post("/account/login/", {"login": "member@example.com", "password": "wrong"})
    limited = client.post("/account/login/", {"login": "member@example.com", "password": PASSWORD})
    assert limited.status_code == 429 and "Too many attempts" in limited.content.decode()
    assert client.get("/account/").status_code == 302


def test_signed_in_customer_checks_out_without_contact_or_password(shop_client, alpha, catalog, providers):
    client = shop_client(alpha)
    register(client)
    page = client.get(f"/p/{catalog.card.pk}/")
    html = page.content.decode()
    assert 'name="contact"' not in html and 'name="query_password"' not in html
    assert "member@example.com" in html
    response = client.post(f"/p/{catalog.card.pk}/", {"token": token_of(page), "sku": catalog.sku30.pk,
                                                      "quantity": 1, "payment": "fake-redirect"})
    assert response.status_code == 302 and response["Location"].startswith(PAY_URL)
    from platform_core.orders.models import Order

    with tenant_context(alpha):
        order = Order.objects.get()
        assert order.customer.email == "member@example.com" and order.contact == "member@example.com"
    connection.set_schema_to_public()
    html = client.get("/account/").content.decode()
    assert order.number in html and "Waiting for payment" in html
    # the customer's own orders open without a token, even in a new session after signing in again
    again = shop_client(alpha)
    again.post("/account/login/", {"login": "member@example.com", "password": PASSWORD})
    assert again.get(f"/order/{order.number}/").status_code == 200
    assert again.get(f"/order/{order.number}/status.json").json() == {"status": "pending_payment"}


def test_members_buy_member_only_products(shop_client, alpha, catalog, providers):
    client = shop_client(alpha)
    register(client)
    page = client.get(f"/p/{catalog.members.pk}/")
    assert "Only members can buy" not in page.content.decode()
    response = client.post(f"/p/{catalog.members.pk}/", {"token": token_of(page), "sku": catalog.members_sku.pk,
                                                         "quantity": 1, "payment": "fake-redirect"})
    assert response.status_code == 302


def test_wallet_balance_and_ledger(shop_client, alpha):
    from platform_core.customers.models import Customer
    from platform_core.customers.services import wallet_credit, wallet_debit

    client = shop_client(alpha)
    register(client)
    with tenant_context(alpha):
        customer = Customer.objects.get(email="member@example.com")
        wallet_credit(customer=customer, amount=5000, kind="topup", reference="T-1")
        wallet_debit(customer=customer, amount=1250, kind="payment", reference="P-1")
    connection.set_schema_to_public()
    html = client.get("/account/").content.decode()
    assert "¥37.50" in html  # balance
    assert "+¥50.00" in html and "-¥12.50" in html
    assert "T-1" in html and "P-1" in html


def test_wallet_top_up_starts_a_payment_with_a_provider_that_can_top_up(shop_client, alpha, providers):
    providers(FakeRedirectProvider, FakeInstantProvider)  # the wallet itself cannot top up a wallet
    client = shop_client(alpha)
    register(client)
    html = client.get("/account/").content.decode()
    assert "Fake Pay" in html and "Balance" in html
    assert 'value="fake-instant"' not in html
    bad = client.post("/account/topup/", {"amount": "abc", "payment": "fake-redirect"})
    assert bad.status_code == 400 and "Enter an amount like 10 or 9.90." in bad.content.decode()
    for amount in ["0", "-5", "1.234", "100001", "NaN", "Infinity", "1e400"]:
        assert client.post("/account/topup/", {"amount": amount, "payment": "fake-redirect"}).status_code == 400
    assert client.post("/account/topup/", {"amount": "10", "payment": "fake-instant"}).status_code == 400
    response = client.post("/account/topup/", {"amount": "25.50", "payment": "fake-redirect"})
    assert response.status_code == 302 and response["Location"].startswith(PAY_URL)
    from platform_core.orders.models import Order

    with tenant_context(alpha):
        order = Order.objects.get()
        assert order.kind == "wallet_topup" and order.total == 2550
    connection.set_schema_to_public()
    # paid: the wallet is credited and the order page says so
    mark_paid(alpha, order.number)
    html = client.get("/account/").content.decode()
    assert "¥25.50" in html
    page = client.get(f"/order/{order.number}/").content.decode()
    assert "Wallet top-up" in page and "Completed" in page and "Report a problem" not in page


def test_top_up_needs_a_signed_in_customer(shop_client, alpha, providers):
    response = shop_client(alpha).post("/account/topup/", {"amount": "10", "payment": "fake-redirect"})
    assert response.status_code == 302 and response["Location"] == "/account/login/"
