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
