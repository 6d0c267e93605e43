"""API tokens: the right key of an active member opens the shop's API; a wrong key,
an inactive merchant, a malformed header or another shop's member gets nothing."""
from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token


def _get(token_header: str | None, host: str = "alpha.kameng.test"):
    headers = {"HTTP_AUTHORIZATION": token_header} if token_header is not None else {}
    return Client(HTTP_HOST=host, **headers).get("/api/v1/orders/")


def test_the_owners_token_opens_the_shop_api(alpha, alice):
    key = Token.objects.create(user=alice).key
    response = _get(f"Token {key}")
    assert response.status_code == 200 and response.json()["results"] == []


@pytest.mark.parametrize("header", [
    "Token 0123456789abcdef0123456789abcdef01234567",  # well-formed, unknown
    "Token " + "x" * 300,
    "Token x';DROP--",
])
def test_an_unknown_key_is_refused(alpha, alice, header):
    Token.objects.create(user=alice)
    response = _get(header)
    assert response.status_code == 401 and response.json()["detail"] == "Invalid token."


@pytest.mark.parametrize("header", ["Token", "Token two words", "Token \u00e9t\u00e9"])
def test_a_malformed_header_is_refused(alpha, header):
    assert _get(header).status_code == 401


def test_an_inactive_merchants_token_is_refused(alpha, alice):
    key = Token.objects.create(user=alice).key
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    response = _get(f"Token {key}")
    assert response.status_code == 401 and response.json()["detail"] == "User inactive or deleted."


def test_a_deleted_token_stops_working_at_once(alpha, alice):
    token = Token.objects.create(user=alice)
    assert _get(f"Token {token.key}").status_code == 200
    token.delete()
    assert _get(f"Token {token.key}").status_code == 401


def test_another_shops_owner_gets_403_here_and_200_at_home(alpha, bravo, bob):
    key = Token.objects.create(user=bob).key
    assert _get(f"Token {key}").status_code == 403
    assert _get(f"Token {key}", host="bravo.kameng.test").status_code == 200


def test_no_token_is_not_authenticated(alpha):
    response = _get(None)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"


@pytest.fixture
def remembered_for(settings, monkeypatch):
    """Tokens remembered per process for ``seconds`` (this test's own memory)."""
    from api import authentication

    monkeypatch.setattr(authentication, "_recently_authenticated", {})

    def remember(seconds):
        settings.KAMENG_CACHE_PROCESS_SECONDS = seconds

    return remember


def test_a_token_read_once_is_remembered_for_the_next_requests(alpha, alice, remembered_for, monkeypatch):
    from tests.commerce_helpers import StatementCounter

    remembered_for(60)
    key = Token.objects.create(user=alice).key
    statements = StatementCounter(monkeypatch)
    assert _get(f"Token {key}").status_code == 200
    assert sum("authtoken_token" in sql for sql in statements.sent) == 1
    statements.clear()
    assert _get(f"Token {key}").status_code == 200
    assert not any("authtoken_token" in sql or "tenants_shopmembership" in sql for sql in statements.sent)


def test_changes_through_this_process_apply_to_the_next_request_at_once(alpha, bravo, alice, remembered_for):
    from tenants.models import ShopMembership

    remembered_for(60)
    token = Token.objects.create(user=alice)
    header = f"Token {token.key}"
    assert _get(header).status_code == 200
    ShopMembership.objects.filter(merchant=alice, shop=alpha).first().delete()  # removed from the shop
    assert _get(header).status_code == 403
    ShopMembership.objects.create(merchant=alice, shop=alpha, role="owner")
    assert _get(header).status_code == 200
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert _get(header).status_code == 401
    alice.is_active = True
    alice.save(update_fields=["is_active"])
    assert _get(header).status_code == 200
    token.delete()
    assert _get(header).status_code == 401
    assert _get("Token 0123456789abcdef0123456789abcdef01234567").status_code == 401  # unknown: never kept


def test_a_token_revoked_past_this_process_stops_working_within_the_seconds(alpha, alice, remembered_for):
    import time

    from django.db import connection

    remembered_for(0.3)
    token = Token.objects.create(user=alice)
    assert _get(f"Token {token.key}").status_code == 200
    with connection.cursor() as cursor:  # as another web process would: no signal reaches this one
        cursor.execute("DELETE FROM authtoken_token WHERE key = %s", [token.key])
    time.sleep(0.4)
    assert _get(f"Token {token.key}").status_code == 401
