"""Payment fees through the shop API and the shop console: owners and admins set a
method's fee (GET/PUT /api/v1/plugins/<slug>/fee/, the fee form on the plugin's page),
everyone else is refused; a headless storefront lists each method's fee and amount for
an order (GET /api/v1/orders/<n>/payment-methods/) and the payment start answer
carries both."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import tenant_context
from rest_framework.authtoken.models import Token

from platform_core.audit.models import AuditEvent
from platform_core.orders.services import LineRequest, order_place
from platform_core.payments.models import Payment, PaymentMethodFee
from plugins.services import plugin_configure
from tests.commerce_helpers import make_product
from tests.console.fixtures import carol  # noqa: F401 - fixture
from tests.payments.conftest import api_key, enable_sandbox, gateway  # noqa: F401 - fixtures

FEE_URL = "/api/v1/plugins/sandbox/fee/"


def api(user) -> Client:
    return Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")


def rules_in(shop) -> list:
    with tenant_context(shop):
        rules = list(PaymentMethodFee.objects.values("provider", "fixed", "basis_points", "passed_to_buyer"))
    connection.set_schema_to_public()
    return rules


def test_owner_reads_and_sets_a_fee(alpha, alice):
    client = api(alice)
    assert client.get(FEE_URL).json() == {"provider": "sandbox", "fixed": 0, "basis_points": 0,
                                          "passed_to_buyer": False, "takes_fees": True, "updated_at": None,
                                          "updated_by": ""}
    response = client.put(FEE_URL, {"fixed": 30, "basis_points": 60, "passed_to_buyer": True},
                          content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["fixed"], body["basis_points"], body["passed_to_buyer"], body["updated_by"]) == \
        (30, 60, True, "alice@example.com")
    assert client.get(FEE_URL).json()["basis_points"] == 60
    assert rules_in(alpha) == [{"provider": "sandbox", "fixed": 30, "basis_points": 60, "passed_to_buyer": True}]
    with tenant_context(alpha):
        event = AuditEvent.objects.get(action="payment_fee.changed")
        assert event.actor_email == "alice@example.com" and event.data["after"]["fixed"] == 30


@pytest.mark.parametrize(("body", "field"), [
    ({"fixed": -1, "basis_points": 60, "passed_to_buyer": True}, "fixed"),
    ({"fixed": 0, "basis_points": 2001, "passed_to_buyer": True}, "basis_points"),
    ({"fixed": 0, "basis_points": -5, "passed_to_buyer": True}, "basis_points"),
    ({"fixed": "ten", "basis_points": 60, "passed_to_buyer": True}, "fixed"),
    ({"fixed": 1.5, "basis_points": 60, "passed_to_buyer": True}, "fixed"),
    ({"basis_points": 60, "passed_to_buyer": True}, "fixed"),
    ({"fixed": 0, "basis_points": 60, "passed_to_buyer": "maybe"}, "passed_to_buyer"),
])
def test_bad_fees_are_refused_with_the_field(alpha, alice, body, field):
    response = api(alice).put(FEE_URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["field"] == field and response.json()["detail"]
    assert rules_in(alpha) == []


def test_unknown_methods_and_the_wallet(alpha, alice):
    client = api(alice)
    body = {"fixed": 10, "basis_points": 60, "passed_to_buyer": True}
    assert client.get("/api/v1/plugins/nope/fee/").status_code == 404
    assert client.put("/api/v1/plugins/nope/fee/", body, content_type="application/json").status_code == 404
    assert client.put("/api/v1/plugins/store-notice/fee/", body,
                      content_type="application/json").status_code == 404  # not a payment method
    assert client.get("/api/v1/plugins/wallet/fee/").json()["takes_fees"] is False
    refused = client.put("/api/v1/plugins/wallet/fee/", body, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["code"] == "no_fees"
    assert rules_in(alpha) == []


def test_only_managers_of_this_shop_set_fees(alpha, bravo, carol, bob):
    body = {"fixed": 10, "basis_points": 60, "passed_to_buyer": True}
    staff = api(carol)
    assert staff.get(FEE_URL).status_code == 200  # members may read
    assert staff.put(FEE_URL, body, content_type="application/json").status_code == 403
    outsider = api(bob)  # owner of bravo, nothing in alpha
    assert outsider.get(FEE_URL).status_code == 403
    assert outsider.put(FEE_URL, body, content_type="application/json").status_code == 403
    assert Client(HTTP_HOST="alpha.kameng.test").put(FEE_URL, body, content_type="application/json"
                                                     ).status_code in (401, 403)
    assert rules_in(alpha) == [] and rules_in(bravo) == []


def test_fees_set_in_one_shop_do_not_reach_another(alpha, bravo, alice, bob):
    api(alice).put(FEE_URL, {"fixed": 10, "basis_points": 60, "passed_to_buyer": True},
                   content_type="application/json")
    bravo_api = Client(HTTP_HOST="bravo.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    assert bravo_api.get(FEE_URL).json()["fixed"] == 0
    assert rules_in(bravo) == []


def test_headless_storefront_sees_fees_before_paying_and_pays_them(alpha, alice, gateway, api_key):
    with tenant_context(alpha):
        enable_sandbox(alpha, gateway, api_key)
        plugin_configure(shop=alpha, slug="wallet", data={}, enable=True)
        sku = make_product(keys=2, price=1000)
        order = order_place(lines=[LineRequest(sku.pk, 2)], contact="g@example.com", query_password="1234")
    connection.set_schema_to_public()
    client = api(alice)
    client.put(FEE_URL, {"fixed": 30, "basis_points": 60, "passed_to_buyer": True}, content_type="application/json")

    methods = client.get(f"/api/v1/orders/{order.number}/payment-methods/").json()
    # the wallet is not offered to a guest order
    assert methods == [{"provider": "sandbox", "name": "Sandbox payment (test)", "fee": 42, "amount": 2042,
                        "currency": "CNY"}]
    assert client.get("/api/v1/orders/nope/payment-methods/").status_code == 404

    started = client.post(f"/api/v1/orders/{order.number}/payments/",
                          {"provider": "sandbox", "fee": 0, "amount": 1},  # buyers never choose the fee
                          content_type="application/json")
    assert started.status_code == 201, started.content
    body = started.json()
    assert (body["amount"], body["order_total"], body["fee"], body["fee_passed_to_buyer"]) == (2042, 2000, 42, True)
    with tenant_context(alpha):
        assert Payment.objects.get().amount == 2042
    connection.set_schema_to_public()
    (payment,) = client.get(f"/api/v1/orders/{order.number}/").json()["payments"]
    assert (payment["amount_minor"], payment["fee_minor"], payment["fee_paid_by_buyer"]) == (2042, 42, True)


def test_payment_methods_after_payment_are_empty(alpha, alice):
    with tenant_context(alpha):
        sku = make_product(keys=1)
        order = order_place(lines=[LineRequest(sku.pk, 1)], contact="g@example.com", query_password="1234")
        order.status = "cancelled"
        order.save(update_fields=["status"])
    connection.set_schema_to_public()
    assert api(alice).get(f"/api/v1/orders/{order.number}/payment-methods/").json() == []


# --- the shop console's fee form ------------------------------------------------------------

def test_console_fee_form_for_owners(shop_client, alpha, alice):
    client = shop_client(alpha, alice)
    page = client.get("/manage/plugins/sandbox/")
    assert page.status_code == 200 and 'data-testid="fee-form"' in page.content.decode()
    assert 'data-testid="fee-form"' not in client.get("/manage/plugins/wallet/").content.decode()
    saved = client.post("/manage/plugins/sandbox/fee/", {"fee-fixed": "0.30", "fee-percent": "0.6",
                                                         "fee-passed_to_buyer": "on"})
    assert saved.status_code == 302
    assert rules_in(alpha) == [{"provider": "sandbox", "fixed": 30, "basis_points": 60, "passed_to_buyer": True}]
    html = client.get("/manage/plugins/sandbox/").content.decode()
    assert 'value="0.30"' in html and 'value="0.60"' in html


@pytest.mark.parametrize("fields", [
    {"fee-fixed": "-1", "fee-percent": "1"},
    {"fee-fixed": "0.001", "fee-percent": "1"},
    {"fee-fixed": "1", "fee-percent": "20.01"},
    {"fee-fixed": "1", "fee-percent": "abc"},
    {"fee-fixed": "1000.01", "fee-percent": "1"},
])
def test_console_refuses_bad_fees_clearly(shop_client, alpha, alice, fields):
    client = shop_client(alpha, alice)
    response = client.post("/manage/plugins/sandbox/fee/", fields, follow=True)
    assert response.status_code == 200
    assert "Fee not saved" in response.content.decode() or "must be between" in response.content.decode()
    assert rules_in(alpha) == []


def test_console_fee_form_refused_to_staff(shop_client, alpha, carol):
    client = shop_client(alpha, carol)
    response = client.post("/manage/plugins/sandbox/fee/", {"fee-fixed": "0.30", "fee-percent": "0.6"})
    assert response.status_code == 403
    assert rules_in(alpha) == []


def test_openapi_schema_describes_the_fee_endpoints(alpha):
    import yaml

    response = Client(HTTP_HOST="alpha.kameng.test").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/json") else \
        yaml.safe_load(response.content)
    paths = schema["paths"]
    assert {"get", "put"} <= set(paths["/api/v1/plugins/{slug}/fee/"])
    assert "get" in paths["/api/v1/orders/{number}/payment-methods/"]
    started = paths["/api/v1/orders/{number}/payments/"]["post"]["responses"]["201"]["content"]
    ref = started["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert {"fee", "amount", "order_total", "fee_passed_to_buyer"} <= set(schema["components"]["schemas"][ref]
                                                                            ["properties"])
