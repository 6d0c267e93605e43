"""Token API calls and gateways' webhooks take the shorter middleware chain
(platform_core/handlers.py); what they answer is the same as through the full one."""
from __future__ import annotations

import io
import json

import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client, RequestFactory
from django_tenants.utils import tenant_context
from rest_framework.authtoken.models import Token

from platform_core.handlers import is_sessionless, request_kind
from plugins.services import plugin_configure
from tests.api.test_commerce_api import api
from tests.commerce_helpers import make_product


@pytest.mark.parametrize(("path", "authorization", "expected"), [
    ("/hooks/payments/sandbox/", "", "gateway"),
    ("/hooks/payments/sandbox/", "Token abc", "gateway"),
    ("/api/v1/orders/", "Token abc", "sessionless"),
    ("/api/v1/orders/", "", "full"),  # the console's own calls: session authentication
    ("/api/v1/orders/", "Basic abc", "full"),
    ("/", "Token abc", "full"),  # the storefront always has its session
    ("/manage/", "Token abc", "full"),
    ("/apiary/", "", "full"),
    ("/hooksy/", "", "full"),
])
def test_which_requests_go_without_a_session(path, authorization, expected):
    environ = {"PATH_INFO": path, **({"HTTP_AUTHORIZATION": authorization} if authorization else {})}
    assert request_kind(environ) == expected
    assert is_sessionless(environ) is (expected != "full")


def test_a_gateways_webhook_takes_the_shortest_chain(alpha, sessions_loaded, settings, monkeypatch):
    from platform_core.payments import views as payment_views

    _text = payment_views._text
    settings.SECURE_CONTENT_TYPE_NOSNIFF = True
    with tenant_context(alpha):
        plugin_configure(shop=alpha, slug="sandbox", enable=True,
                         data={"gateway_url": "http://127.0.0.1:9", "api_key": "sk_sandbox_" + "a" * 24})
    hooks = Client(HTTP_HOST="alpha.kameng.test", HTTP_ACCEPT_LANGUAGE="zh-hans")
    forged = hooks.post("/hooks/payments/sandbox/", b"{}", content_type="application/json")
    assert forged.status_code == 400 and sessions_loaded == []
    # the security headers stay; no language, frame options or Vary for a gateway
    assert forged["X-Content-Type-Options"] == "nosniff"
    assert "X-Frame-Options" not in forged and "Content-Language" not in forged and "Vary" not in forged
    # whatever language the thread's previous request used, a webhook runs in the default
    from django.utils import translation

    seen = []
    translation.activate("zh-hans")  # left by an earlier request of this thread
    monkeypatch.setattr(payment_views, "_text", lambda message, status: (seen.append(translation.get_language()),
                                                                         _text(message, status))[1])
    assert hooks.post("/hooks/payments/nope/", b"{}", content_type="application/json").status_code == 404
    assert seen == [settings.LANGUAGE_CODE]
    # a fixed URL without its slash is not redirected: the gateway is told it is wrong
    assert hooks.post("/hooks/payments/sandbox", b"{}", content_type="application/json").status_code == 404
    # the storefront on the same host keeps its whole chain
    page = Client(HTTP_HOST="alpha.kameng.test").get("/")
    assert page.status_code == 200 and page["X-Frame-Options"] == "DENY"


@pytest.fixture
def sessions_loaded(monkeypatch):
    """Counts the requests whose session middleware ran."""
    seen = []
    original = SessionMiddleware.process_request

    def counting(self, request):
        seen.append(request.path)
        return original(self, request)

    monkeypatch.setattr(SessionMiddleware, "process_request", counting)
    return seen


def test_a_token_api_call_is_answered_without_loading_a_session(alpha, alice, sessions_loaded):
    with tenant_context(alpha):
        sku = make_product(keys=1, price=700)
    placed = api(alpha, alice).post("/api/v1/orders/", {"lines": [{"sku_id": sku.pk, "quantity": 1}],
                                                        "contact": "g@example.com", "query_password": "1234"},
                                    content_type="application/json")
    assert placed.status_code == 201, placed.content
    assert placed.json()["total_minor"] == 700 and placed["Content-Type"] == "application/json"
    # the headers every response carries still come from the middleware kept
    assert placed["X-Content-Type-Options"] == "nosniff" and placed["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in placed and not placed.cookies
    assert sessions_loaded == []


def test_the_consoles_session_still_opens_the_api(alpha, alice, sessions_loaded):
    client = Client(HTTP_HOST="alpha.kameng.test")
    client.force_login(alice)
    response = client.get("/api/v1/orders/")
    assert response.status_code == 200 and response.json()["results"] == []
    assert sessions_loaded == ["/api/v1/orders/"]


def test_a_suspended_shop_refuses_token_api_calls_but_takes_webhooks(alpha, alice, sessions_loaded):
    with tenant_context(alpha):
        plugin_configure(shop=alpha, slug="sandbox", enable=True,
                         data={"gateway_url": "http://127.0.0.1:9", "api_key": "sk_sandbox_" + "a" * 24})
    alpha.status = "suspended"
    alpha.save(update_fields=["status"])
    refused = api(alpha, alice).get("/api/v1/orders/")
    assert refused.status_code == 403 and refused.json()["code"] == "shop_unavailable"
    # a buyer may already have paid: the gateway is still heard (and a forgery refused)
    hook = Client(HTTP_HOST="alpha.kameng.test").post("/hooks/payments/sandbox/", b"{}",
                                                       content_type="application/json")
    assert hook.status_code == 400
    assert sessions_loaded == []


def test_an_unknown_host_is_a_clean_404_on_the_short_chain_too(db):
    response = Client(HTTP_HOST="nobody.example.org", HTTP_AUTHORIZATION="Token abc").get("/api/v1/orders/")
    assert response.status_code == 404 and b"nobody.example.org" in response.content


def test_the_served_application_routes_each_kind_to_its_chain(alpha, alice, sessions_loaded):
    """platform_core.wsgi.application itself, as gunicorn calls it."""
    from platform_core.wsgi import application

    token = Token.objects.create(user=alice).key

    def call(path, **headers):
        environ = RequestFactory(HTTP_HOST="alpha.kameng.test", **headers).get(path).environ
        environ["wsgi.input"] = io.BytesIO(b"")
        answer = {}

        def start_response(status, response_headers, exc_info=None):
            answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

        # as Django's test client does: the test's transaction must outlive the request
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            body = b"".join(application(environ, start_response))
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        return answer["status"], answer["headers"], body

    status, headers, body = call("/api/v1/orders/", HTTP_AUTHORIZATION=f"Token {token}")
    assert status == 200 and json.loads(body)["results"] == [] and headers["X-Content-Type-Options"] == "nosniff"
    assert sessions_loaded == []
    status, _, _ = call("/api/v1/orders/")  # no token, no session: the full chain, and refused
    assert status in (401, 403) and sessions_loaded == ["/api/v1/orders/"]


def test_a_path_is_matched_once_and_each_request_gets_its_own_match(alpha, alice, monkeypatch):
    from django.urls.resolvers import URLResolver

    from platform_core import handlers

    handlers._resolved.cache_clear()
    matched = []
    original = URLResolver.resolve

    def counting(self, path):
        if self.pattern.regex.pattern == "^/":  # the URLconf's root, not its includes
            matched.append(path)
        return original(self, path)

    monkeypatch.setattr(URLResolver, "resolve", counting)
    client = api(alpha, alice)
    first = client.get("/api/v1/orders/")
    second = client.get("/api/v1/orders/")
    assert first.status_code == second.status_code == 200
    assert matched == ["/api/v1/orders/"]
    assert first.wsgi_request.resolver_match is not second.wsgi_request.resolver_match
    assert first.wsgi_request.resolver_match.url_name == second.wsgi_request.resolver_match.url_name
    # what a view or middleware does to its match's arguments stays in its request
    first.wsgi_request.resolver_match.kwargs["changed"] = True
    assert "changed" not in client.get("/api/v1/orders/").wsgi_request.resolver_match.kwargs
    # a path with arguments: each path its own match; an unknown path is a 404 every time
    for number in ("A1", "B2"):
        detail = client.get(f"/api/v1/orders/{number}/")
        assert detail.status_code == 404 and detail.wsgi_request.resolver_match.kwargs == {"number": number}
    assert client.get("/api/v1/no-such-thing/").status_code == 404
    assert client.get("/api/v1/no-such-thing/").status_code == 404


def test_a_changed_urlconf_is_followed(alpha, alice, settings):
    client = api(alpha, alice)
    assert client.get("/api/v1/orders/").status_code == 200
    settings.ROOT_URLCONF = "platform_core.urls_public"  # the platform's own: no shop API there
    assert client.get("/api/v1/orders/").status_code == 404
    settings.ROOT_URLCONF = "platform_core.urls_shop"
    assert client.get("/api/v1/orders/").status_code == 200
