"""Checkout on the product page: validation, idempotency, payment start."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from tests.storefront.conftest import PAY_URL, FakeInstantProvider, FakeQrProvider, FakeRedirectProvider, token_of

pytestmark = pytest.mark.django_db


def orders_in(shop):
    from platform_core.orders.models import Order

    with tenant_context(shop):
        orders = list(Order.objects.order_by("id"))
    connection.set_schema_to_public()
    return orders


def checkout(client, product, **fields):
    page = client.get(f"/p/{product.pk}/")
    data = {"token": token_of(page), "sku": product.skus.first().pk if hasattr(product, "skus") else "",
            "quantity": 1, "contact": "buyer@example.com", "query_password": "s3cret-pw",
            "payment": "fake-redirect", **fields}
    return client.post(f"/p/{product.pk}/", data)


@pytest.fixture
def post(shop_client, alpha, catalog, providers):
    def run(product=None, client=None, **fields):
        product = product or catalog.card
        with tenant_context(alpha):
            sku = fields.pop("sku", None) or product.skus.order_by("id").first().pk
        connection.set_schema_to_public()
        return checkout(client or shop_client(alpha), product, sku=sku, **fields)

    return run


def test_guest_checkout_redirects_to_the_gateway(post, alpha, catalog):
    response = post(quantity=2)
    assert response.status_code == 302 and response["Location"].startswith(PAY_URL)
    (order,) = orders_in(alpha)
    assert order.total == 2000 and order.contact == "buyer@example.com" and order.payment_method == ""
    started = FakeRedirectProvider.started[-1]
    return_url = urlparse(started["return_url"])
    assert return_url.scheme == "http" and return_url.netloc == "alpha.kameng.test"
    assert return_url.path == f"/order/{order.number}/"
    assert parse_qs(return_url.query)["t"] == [order.access_token]
    assert started["notify_url"] == "http://alpha.kameng.test/hooks/payments/fake-redirect/"
    assert order.language == "en"


def test_wholesale_price_is_charged(post, alpha):
    post(quantity=5)
    (order,) = orders_in(alpha)
    assert order.total == 4500


@pytest.mark.parametrize("fields, field, message", [
    ({"contact": "not-an-email@"}, "contact", "Enter a valid e-mail address or phone number."),
    ({"contact": "12"}, "contact", "Enter a valid e-mail address or phone number."),
    ({"contact": ""}, "contact", "This field is required."),
    ({"query_password": "abc"}, "query_password", "at least 4 characters"),
    ({"quantity": 11}, "quantity", "Quantity must be between 1 and 10."),
    ({"quantity": 0}, "quantity", "Quantity must be between 1 and 10."),
    ({"quantity": -3}, "quantity", "Quantity must be between 1 and 10."),
    ({"quantity": "99999999999999999999999999"}, "quantity", "Quantity must be between 1 and 10."),
    ({"quantity": "9" * 5000}, "quantity", "Enter a whole number."),
    ({"quantity": ""}, "quantity", "This field is required."),
    ({"quantity": "two"}, "quantity", "Enter a whole number."),
    ({"quantity": "1.5"}, "quantity", "Enter a whole number."),
    ({"payment": "no-such-gateway"}, "payment", "Select a valid choice."),
    ({"sku": "abc"}, "sku", "Enter a whole number."),
    ({"sku": "-1"}, "sku", "greater than or equal to 1"),
    ({"sku": "999999999"}, "sku", "This product is not available."),
])
def test_checkout_validation_errors(post, alpha, fields, field, message):
    response = post(**fields)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Please check the highlighted fields." in html
    assert message in html
    # the message sits under the field it is about
    after_field = html.split(f'name="{field}"', 1)[1]
    assert message in after_field.split('class="field-error"', 1)[1].split("</p>", 1)[0]
    assert orders_in(alpha) == []


def test_sku_of_a_hidden_product_is_refused_clearly(post, alpha, catalog):
    response = post(sku=catalog.hidden_sku.pk)
    assert response.status_code == 400
    assert "This product is not available." in response.content.decode()
    assert orders_in(alpha) == []


def test_sku_of_another_visible_product_is_refused(post, alpha, catalog):
    response = post(sku=catalog.members_sku.pk)
    assert response.status_code == 400 and "This product is not available." in response.content.decode()


def test_sold_out_option_is_refused_clearly(post, alpha, catalog):
    response = post(product=catalog.soldout)
    assert response.status_code == 400
    assert "This option is sold out." in response.content.decode()
    assert orders_in(alpha) == []


def test_more_than_the_stock_says_how_many_are_left(post, alpha, catalog):
    response = post(sku=catalog.sku90.pk, quantity=3)
    assert response.status_code == 409
    html = response.content.decode()
    assert "Only 1 left in stock." in html
    assert orders_in(alpha) == []


def test_members_only_product_needs_a_signed_in_customer(post, alpha, catalog):
    response = post(product=catalog.members)
    assert response.status_code == 403
    assert "Sign in as a member to buy this product." in response.content.decode()


def test_top_up_account_is_checked_against_the_pattern(post, alpha, catalog):
    bad = post(product=catalog.topup, account="hello")
    assert bad.status_code == 400 and "Enter a valid Phone number." in bad.content.decode()
    missing = post(product=catalog.topup, account="")
    assert missing.status_code == 400 and "This field is required." in missing.content.decode()
    good = post(product=catalog.topup, account="13800138000")
    assert good.status_code == 302
    (order,) = orders_in(alpha)
    with tenant_context(alpha):
        assert order.lines.get().account == "13800138000"


def test_missing_or_forged_token_is_refused(post, alpha):
    for token in ["", "short", "<script>", "a" * 65]:
        response = post(token=token)
        assert response.status_code == 400
    assert orders_in(alpha) == []
    # the page gives a fresh, valid token to try again
    assert len(token_of(post(token="bad"))) >= 16


def test_double_submit_with_the_same_token_creates_one_order(shop_client, alpha, catalog, providers):
    client = shop_client(alpha)
    page = client.get(f"/p/{catalog.card.pk}/")
    data = {"token": token_of(page), "sku": catalog.sku30.pk, "quantity": 2, "contact": "buyer@example.com",
            "query_password": "s3cret-pw", "payment": "fake-redirect"}
    first = client.post(f"/p/{catalog.card.pk}/", data)
    second = client.post(f"/p/{catalog.card.pk}/", data)
    assert first.status_code == second.status_code == 302
    (order,) = orders_in(alpha)
    with tenant_context(alpha):
        from platform_core.catalog.models import SKU

        assert SKU.objects.get(pk=catalog.sku30.pk).reserved_count == 2  # reserved once
    connection.set_schema_to_public()
    assert client.get(f"/order/{order.number}/").status_code == 200


def test_a_replayed_token_does_not_hand_over_someone_elses_order(shop_client, alpha, catalog, providers):
    victim = shop_client(alpha)
    page = victim.get(f"/p/{catalog.card.pk}/")
    data = {"token": token_of(page), "sku": catalog.sku30.pk, "quantity": 1, "contact": "victim@example.com",
            "query_password": "s3cret-pw", "payment": "fake-redirect"}
    assert victim.post(f"/p/{catalog.card.pk}/", data).status_code == 302
    attacker = shop_client(alpha)
    response = attacker.post(f"/p/{catalog.card.pk}/", {**data, "contact": "attacker@example.com"})
    assert response.status_code == 409
    (order,) = orders_in(alpha)
    assert "victim@example.com" not in response.content.decode()
    assert attacker.get(f"/order/{order.number}/").status_code == 404


def test_different_tokens_create_different_orders(post, alpha):
    post()
    post()
    assert len(orders_in(alpha)) == 2


def test_too_many_unpaid_orders_is_a_clear_error(post, alpha):
    for _ in range(3):
        assert post().status_code == 302
    response = post()
    assert response.status_code == 429
    assert "too many unpaid orders" in response.content.decode()


def test_qr_payment_shows_the_code_on_the_order_page(post, alpha, providers):
    providers(FakeQrProvider)
    response = post(payment="fake-qr")
    (order,) = orders_in(alpha)
    assert response.status_code == 302 and response["Location"] == f"/order/{order.number}/"


def test_qr_code_text_is_shown(shop_client, alpha, catalog, providers):
    providers(FakeQrProvider)
    client = shop_client(alpha)
    checkout(client, catalog.card, sku=catalog.sku30.pk, payment="fake-qr")
    (order,) = orders_in(alpha)
    html = client.get(f"/order/{order.number}/").content.decode()
    assert "fakeqr://pay/" in html and 'data-testid="qr"' in html


def test_instant_payment_goes_straight_to_the_delivered_keys(shop_client, alpha, catalog, providers):
    providers(FakeInstantProvider)
    client = shop_client(alpha)
    response = checkout(client, catalog.card, sku=catalog.sku30.pk, payment="fake-instant", quantity=2)
    (order,) = orders_in(alpha)
    assert response.status_code == 302 and response["Location"] == f"/order/{order.number}/"
    html = client.get(response["Location"]).content.decode()
    assert "Delivered" in html
    assert html.count('data-testid="key"') == 2
    assert catalog.keys["sku30"][0] in html and catalog.keys["sku30"][1] in html


def test_payment_that_cannot_start_leaves_the_buyer_on_the_order_page(shop_client, alpha, catalog, providers,
                                                                      monkeypatch):
    from plugins.payment import PaymentError

    def refuse(self, order, payment, **kwargs):
        raise PaymentError("The gateway is down.")

    monkeypatch.setattr(FakeRedirectProvider, "start", refuse)
    client = shop_client(alpha)
    response = checkout(client, catalog.card, sku=catalog.sku30.pk)
    (order,) = orders_in(alpha)
    assert response.status_code == 302 and response["Location"] == f"/order/{order.number}/"
    html = client.get(response["Location"]).content.decode()
    assert "The payment could not start: The gateway is down." in html


def test_checkout_form_has_csrf_protection(shop_client, alpha, catalog, providers):
    from django.test import Client

    client = Client(HTTP_HOST="alpha.kameng.test", enforce_csrf_checks=True)
    page = client.get(f"/p/{catalog.card.pk}/")
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()
    response = client.post(f"/p/{catalog.card.pk}/", {"token": token_of(page), "sku": catalog.sku30.pk,
                                                      "quantity": 1, "contact": "a@example.com",
                                                      "query_password": "secret", "payment": "fake-redirect"})
    assert response.status_code == 403
