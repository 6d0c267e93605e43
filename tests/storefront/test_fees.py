"""The buyer sees each payment method's fee and the amount to pay before paying (checkout
form, live price quote, the order page's pay choice, wallet top-up), in English and
Chinese, and pays exactly that through the real sandbox gateway."""
from __future__ import annotations

import re

import requests
from django.db import connection
from django_tenants.utils import tenant_context

from platform_core.orders.models import Order
from platform_core.payments.models import Payment
from platform_core.payments.services import payment_method_fee_set, payments_check_order
from plugins.services import plugin_configure
from tests.payments.conftest import api_key, enable_sandbox, gateway  # noqa: F401 - fixtures
from tests.storefront.conftest import token_of


def _shop_with_fees(alpha, gateway, api_key, *, passed=True):
    with tenant_context(alpha):
        enable_sandbox(alpha, gateway, api_key)
        payment_method_fee_set(provider_slug="sandbox", fixed=10, basis_points=60, passed_to_buyer=passed,
                               actor="owner@example.com")
    connection.set_schema_to_public()


def _option_of(html: str, slug: str) -> str:
    match = re.search(rf'<label class="option"><input[^>]*value="{slug}".*?</label>', html, re.S)
    assert match, f"no payment option {slug}"
    return match.group(0)


def test_checkout_shows_the_fee_and_the_amount_to_pay_per_method(shop_client, alpha, catalog, gateway, api_key):
    _shop_with_fees(alpha, gateway, api_key)
    client = shop_client(alpha)
    option = _option_of(client.get(f"/p/{catalog.card.pk}/").content.decode(), "sandbox")
    # 10.00: 0.10 fixed + 0.6 % (0.06)
    assert "(+¥0.16 fee)" in option and "¥10.16" in option
    html = client.get(f"/p/{catalog.card.pk}/", {"qty": 3}).content.decode()
    assert "(+¥0.28 fee)" in _option_of(html, "sandbox") and "¥30.28" in _option_of(html, "sandbox")
    # the only method is chosen already: the amount to pay stands next to the total
    assert re.search(r'data-total>¥30\.00<.*data-testid="pay-total">¥30\.28<', html, re.S)
    quote = client.get(f"/p/{catalog.card.pk}/price.json", {"sku": catalog.sku30.pk, "qty": 5}).json()
    assert quote["total"] == 4500  # wholesale 9.00 each; the fee is not part of the goods' total
    (sandbox,) = [m for m in quote["methods"] if m["provider"] == "sandbox"]
    assert (sandbox["fee"], sandbox["amount"], sandbox["amount_text"]) == (37, 4537, "¥45.37")
    assert sandbox["fee_text"] == "(+¥0.37 fee)"

    chinese = _option_of(client.get(f"/p/{catalog.card.pk}/", {"lang": "zh-hans"}).content.decode(), "sandbox")
    assert "（手续费 +¥0.16）" in chinese


def test_a_fee_the_shop_bears_is_not_shown_to_buyers(shop_client, alpha, catalog, gateway, api_key):
    _shop_with_fees(alpha, gateway, api_key, passed=False)
    html = shop_client(alpha).get(f"/p/{catalog.card.pk}/").content.decode()
    option = _option_of(html, "sandbox")
    assert 'data-fee-for="sandbox"></small>' in option and "+¥" not in option and "¥10.00" in option
    assert "pay-total" not in html


def test_buyer_pays_what_was_shown_and_sees_the_fee_on_the_order(shop_client, alpha, catalog, gateway, api_key):
    _shop_with_fees(alpha, gateway, api_key)
    client = shop_client(alpha)
    page = client.get(f"/p/{catalog.card.pk}/")
    response = client.post(f"/p/{catalog.card.pk}/", {
        "token": token_of(page), "sku": catalog.sku30.pk, "quantity": 1, "contact": "buyer@example.com",
        "query_password": "s3cret-pw", "payment": "sandbox", "fee": "0"})  # a fee sent by the buyer is ignored
    assert response.status_code == 302 and response["Location"].startswith(f"{gateway.base}/pay/")
    with tenant_context(alpha):
        payment = Payment.objects.get()
        order = payment.order
        assert (payment.amount, payment.fee, payment.fee_paid_by_buyer, order.total) == (1016, 16, True, 1000)
    connection.set_schema_to_public()
    at_gateway = requests.get(f"{gateway.base}/v1/payments/{payment.external_id}",
                              headers={"Authorization": f"Bearer {api_key}"}, timeout=10).json()
    assert at_gateway["amount"] == 1016

    # back on the order page before paying: the pay choice shows the same fee and amount
    html = client.get(f"/order/{order.number}/").content.decode()
    assert "(+¥0.16 fee)" in _option_of(html, "sandbox")
    assert re.search(r"data-pay-total>¥10\.16<", html)

    # the buyer pays on the gateway's page; the shop asks the gateway and delivers
    assert requests.post(f"{response['Location']}/pay", allow_redirects=False, timeout=15).status_code == 303
    with tenant_context(alpha):
        assert payments_check_order(order_id=order.pk) == 1
        order.refresh_from_db()
        assert order.status == Order.Status.DELIVERED
    connection.set_schema_to_public()
    html = client.get(f"/order/{order.number}/").content.decode()
    assert re.search(r'data-testid="payment-fee">¥0\.16<', html) and "¥10.16" in html
    assert any(key in html for key in catalog.keys["sku30"])


def test_order_page_pay_choice_lists_the_fee_in_chinese(shop_client, alpha, catalog, gateway, api_key):
    _shop_with_fees(alpha, gateway, api_key)
    with tenant_context(alpha):
        from platform_core.orders.services import LineRequest, order_place

        order = order_place(lines=[LineRequest(sku_id=catalog.sku90.pk, quantity=1)], contact="b@example.com",
                            query_password="look-me-up")
    connection.set_schema_to_public()
    client = shop_client(alpha)
    html = client.get(f"/order/{order.number}/", {"t": order.access_token, "lang": "zh-hans"}).content.decode()
    option = _option_of(html, "sandbox")
    assert "（手续费 +¥0.25）" in option and "¥25.25" in option  # 25.00: 0.10 + 0.15


def test_wallet_top_up_shows_the_fee_rule(shop_client, alpha, gateway, api_key):
    from platform_core.customers.services import customer_register

    _shop_with_fees(alpha, gateway, api_key)
    with tenant_context(alpha):
        plugin_configure(shop=alpha, slug="wallet", data={}, enable=True)
        customer_register(login="member@example.com", password="a-long-password-1", name="M")
    connection.set_schema_to_public()
    client = shop_client(alpha)
    assert client.post("/account/login/", {"login": "member@example.com", "password": "a-long-password-1"}
                       ).status_code == 302
    html = client.get("/account/").content.decode()
    assert "(+0.6% + ¥0.10 fee)" in _option_of(html, "sandbox")
