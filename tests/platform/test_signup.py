"""An entrepreneur signs up on the platform and lands in the console of a live shop."""
from __future__ import annotations

import re
from urllib.parse import urlparse

from django.test import Client

from tenants.models import Shop
from tests.conftest import PASSWORD

FORM = {"email": "new@example.com", "password": PASSWORD, "shop_name": "Kilo Cards", "slug": "kilo",
        "language": "en"}


def test_signup_lands_in_the_new_shops_console(platform_client, db):
    page = platform_client.get("/signup/")
    assert page.status_code == 200 and b"Open your shop" in page.content
    response = platform_client.post("/signup/", FORM)
    assert response.status_code == 302
    target = urlparse(response["Location"])
    assert target.hostname == "kilo.kameng.test" and target.path == "/manage/handoff/"
    shop_browser = Client(HTTP_HOST="kilo.kameng.test")
    landed = shop_browser.get(f"{target.path}?{target.query}", follow=True)
    assert landed.status_code == 200
    assert landed.redirect_chain[-1][0] == "/manage/"
    assert b"Kilo Cards" in landed.content
    # the hand-off link works once only
    again = Client(HTTP_HOST="kilo.kameng.test").get(f"{target.path}?{target.query}", follow=True)
    assert b"already used" in again.content
    assert Shop.objects.get(slug="kilo").status == "trial"
    # the storefront is live too
    assert Client(HTTP_HOST="kilo.kameng.test").get("/").status_code == 200


def test_signup_errors_are_shown_on_the_form(platform_client, db):
    response = platform_client.post("/signup/", {**FORM, "slug": "www"})
    assert response.status_code == 200
    assert "reserved" in response.content.decode()
    response = platform_client.post("/signup/", {**FORM, "slug": "alpha"})
    assert "already taken" in response.content.decode()
    response = platform_client.post("/signup/", {**FORM, "password": "123"})
    assert b"data-field=\"password\"" in response.content
    assert not Shop.objects.filter(name="Kilo Cards").exists()


def test_handoff_token_for_another_shop_is_refused(db, alpha, bravo, alice):
    from tenants.handoff import handoff_token

    token = handoff_token(merchant=alice, shop=alpha)
    response = Client(HTTP_HOST="bravo.kameng.test").get(f"/manage/handoff/?token={token}", follow=True)
    assert b"for another shop" in response.content
    forged = Client(HTTP_HOST="alpha.kameng.test").get(f"/manage/handoff/?token={token}x", follow=True)
    assert b"not valid" in forged.content


def test_merchant_with_two_shops_switches_between_them(shop_client, alpha, bravo, alice, db):
    from tenants.models import ShopMembership

    ShopMembership.objects.create(shop=bravo, merchant=alice, role="admin")
    client = shop_client(alpha, alice)
    index = client.get("/manage/")
    assert b"Bravo Shop" in index.content  # in the shop switcher
    switch = client.get("/manage/switch/bravo/")
    target = urlparse(switch["Location"])
    assert target.hostname == "bravo.kameng.test"
    other = Client(HTTP_HOST="bravo.kameng.test")
    assert other.get(f"{target.path}?{target.query}", follow=True).status_code == 200
    assert other.get("/manage/").status_code == 200
    # no switching into a shop you are not a member of
    ShopMembership.objects.filter(shop=bravo, merchant=alice).delete()
    assert client.get("/manage/switch/bravo/").status_code == 404


def test_account_page_lists_my_shops(platform_client, alice, db):
    platform_client.force_login(alice)
    page = platform_client.get("/account/")
    assert b"Alpha Shop" in page.content and b"Bravo Shop" not in page.content
    assert platform_client.get("/account/open/bravo/").status_code == 404
    assert urlparse(platform_client.get("/account/open/alpha/")["Location"]).hostname == "alpha.kameng.test"


def test_platform_api_creates_a_shop(platform_client, db):
    response = platform_client.post("/api/v1/shops/", {"slug": "lima", "name": "Lima", "email": "l@example.com",
                                                       "password": PASSWORD}, content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "lima" and body["url"] == "http://lima.kameng.test:8000/"
    taken = platform_client.post("/api/v1/shops/", {"slug": "lima", "name": "Lima 2", "email": "l2@example.com",
                                                    "password": PASSWORD}, content_type="application/json")
    assert taken.status_code == 409 and taken.json()["field"] == "slug"
    anonymous = platform_client.post("/api/v1/shops/", {"slug": "mike", "name": "Mike"},
                                     content_type="application/json")
    assert anonymous.status_code == 400


def test_platform_api_with_token_creates_a_shop_for_the_merchant(db, alice):
    from rest_framework.authtoken.models import Token

    client = Client(HTTP_HOST="kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    response = client.post("/api/v1/shops/", {"slug": "november", "name": "November"},
                           content_type="application/json")
    assert response.status_code == 201
    assert {s["slug"] for s in client.get("/api/v1/shops/").json()} == {"alpha", "november"}


def test_openapi_schema_and_docs_on_both_hosts(platform_client, shop_client, alpha, db):
    platform_schema = platform_client.get("/api/schema/")
    assert platform_schema.status_code == 200 and b"/api/v1/shops/" in platform_schema.content
    shop_schema = shop_client(alpha).get("/api/schema/")
    assert shop_schema.status_code == 200 and b"/api/v1/plugins/" in shop_schema.content
    assert b"/api/v1/shops/" not in shop_schema.content
    docs = shop_client(alpha).get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    # served from our own static files (not a word search: the page's random CSRF token may spell "cdn")
    assets = re.findall(r'(?:src|href)="([^"]*)"', docs.content.decode())
    assert assets and all(url.startswith("/static/") for url in assets), assets


def test_login_is_rate_limited(platform_client, alice, db):
    for _ in range(10):
        platform_client.post("/login/", {"username": "alice@example.com", "password": "wrong"})
    response = platform_client.post("/login/", {"username": "alice@example.com", "password": PASSWORD})
    assert b"Too many sign-in attempts" in response.content
