"""POST /api/v1/orders/<number>/payments/: start paying an order through the API."""
from __future__ import annotations

from django.test import Client
from django_tenants.utils import tenant_context
from rest_framework.authtoken.models import Token

from platform_core.orders.services import LineRequest, order_place
from platform_core.payments.models import Payment
from plugins.services import plugin_configure
from tests.commerce_helpers import add_keys, make_product


def test_wallet_payment_cannot_start_for_a_guest_order_and_unknown_provider_is_refused(alpha, alice):
    with tenant_context(alpha):
        sku = make_product(keys=2)
        order = order_place(lines=[LineRequest(sku.pk, 1)], contact="g@example.com", query_password="1234")
        plugin_configure(shop=alpha, slug="wallet", data={}, enable=True)
    client = Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    response = client.post(f"/api/v1/orders/{order.number}/payments/", {"provider": "wallet"},
                           content_type="application/json")
    assert response.status_code == 400 and response.json()["field"] == "provider"
    assert client.post("/api/v1/orders/nope/payments/", {"provider": "wallet"},
                       content_type="application/json").status_code == 404
    with tenant_context(alpha):
        assert not Payment.objects.exists()


def test_payment_start_needs_a_manager_of_this_shop(alpha, bravo, bob):
    with tenant_context(alpha):
        sku = make_product(keys=1)
        order = order_place(lines=[LineRequest(sku.pk, 1)], contact="g@example.com", query_password="1234")
    client = Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    assert client.post(f"/api/v1/orders/{order.number}/payments/", {"provider": "sandbox"},
                       content_type="application/json").status_code == 403


def test_placing_an_order_can_start_its_payment_in_the_same_request(alpha, alice):
    """One request instead of two for headless storefronts: the order, and the sandbox
    gateway's pay page for it; a start that fails leaves the order to be paid later."""
    from sandbox_gateway import serve_in_thread

    server, base_url = serve_in_thread()
    try:
        with tenant_context(alpha):
            sku = make_product(keys=3, price=1500)
            plugin_configure(shop=alpha, slug="sandbox", enable=True,
                             data={"gateway_url": base_url, "api_key": "sk_sandbox_" + "a" * 24})
        client = Client(HTTP_HOST="alpha.kameng.test",
                        HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
        placed = client.post("/api/v1/orders/", {
            "lines": [{"sku_id": sku.pk, "quantity": 1}], "contact": "g@example.com", "query_password": "1234",
            "payment": {"provider": "sandbox"}}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="one-shot")
        assert placed.status_code == 201, placed.content
        body = placed.json()
        assert body["status"] == "pending_payment" and body["payment_error"] is None
        payment = body["payment"]
        assert payment["action"] == "redirect" and payment["url"].startswith(f"{base_url}/pay/pay_")
        assert payment["amount"] == 1500 and payment["external_id"].startswith("pay_")
        assert [p["id"] for p in body["payments"]] == [payment["payment_id"]]
        # the answer is built from the rows just written: it says what reading the order says
        shown = client.get(f"/api/v1/orders/{body['number']}/")
        assert {k: v for k, v in body.items() if k not in ("payment", "payment_error")} == shown.json()
        # a retried request returns the order; it does not start a second payment
        again = client.post("/api/v1/orders/", {
            "lines": [{"sku_id": sku.pk, "quantity": 1}], "contact": "g@example.com", "query_password": "1234",
            "payment": {"provider": "sandbox"}}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="one-shot")
        assert again.status_code == 200 and again.json()["number"] == body["number"]
        with tenant_context(alpha):
            assert Payment.objects.count() == 1

        failed = client.post("/api/v1/orders/", {
            "lines": [{"sku_id": sku.pk, "quantity": 1}], "contact": "h@example.com", "query_password": "1234",
            "payment": {"provider": "no-such-method"}}, content_type="application/json")
        assert failed.status_code == 201 and failed.json()["payment"] is None
        error = failed.json()["payment_error"]
        assert error["status"] == 400 and error["field"] == "provider" and "not available" in error["detail"]
        assert failed.json()["status"] == "pending_payment"
    finally:
        server.stop()


def test_an_order_placed_with_payment_stands_when_the_gateway_is_down(alpha, alice):
    """The gateway is called in the order's transaction; the call fails: the order still
    commits and waits for payment with its keys reserved, its payment written failed with
    why, and the answer says the payment can be started again."""
    from platform_core import devstack

    with tenant_context(alpha):
        sku = make_product(keys=2, price=900)
        plugin_configure(shop=alpha, slug="sandbox", enable=True,  # nothing listens there
                         data={"gateway_url": f"http://127.0.0.1:{devstack.free_port()}",
                               "api_key": "sk_sandbox_" + "b" * 24})
    client = Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    placed = client.post("/api/v1/orders/", {
        "lines": [{"sku_id": sku.pk, "quantity": 1}], "contact": "down@example.com", "query_password": "1234",
        "payment": {"provider": "sandbox"}}, content_type="application/json")
    assert placed.status_code == 201, placed.content
    body = placed.json()
    assert body["status"] == "pending_payment" and body["payment"] is None
    assert body["payment_error"]["status"] == 503 and body["payment_error"]["retryable"] is True
    with tenant_context(alpha):
        payment = Payment.objects.get(order__number=body["number"])
        assert payment.status == "failed" and payment.data["attempts"] == [{"account": "main", "error": "retryable"}]
        sku.refresh_from_db()
        assert sku.reserved_count == 1  # the keys stay reserved for the next try


def test_an_order_placed_without_payment_is_answered_as_it_reads_back(alpha, alice):
    with tenant_context(alpha):
        sku = make_product(keys=2, price=700)
    client = Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    placed = client.post("/api/v1/orders/", {"lines": [{"sku_id": sku.pk, "quantity": 2}], "contact": "g@example.com",
                                             "query_password": "1234"}, content_type="application/json")
    assert placed.status_code == 201, placed.content
    body = placed.json()
    assert body["total_minor"] == 1400 and [e["kind"] for e in body["events"]] == ["order.created"]
    assert body["lines"][0]["quantity"] == 2 and body["payments"] == [] and body["ticket_ids"] == []
    assert body == client.get(f"/api/v1/orders/{body['number']}/").json()


def test_an_order_placed_with_payment_writes_both_in_one_transaction(alpha, alice):
    """The payment is written in the order's own transaction, with the shop's fee rule
    of that moment; an order refused for stock leaves no payment behind; a free order is
    delivered and needs none."""
    from sandbox_gateway import serve_in_thread

    from platform_core.orders.models import Order
    from platform_core.payments.services import payment_method_fee_set

    server, base_url = serve_in_thread()
    try:
        with tenant_context(alpha):
            sku = make_product(keys=1, price=1000)
            free = make_product(name="Free sample", keys=1, price=0)
            plugin_configure(shop=alpha, slug="sandbox", enable=True,
                             data={"gateway_url": base_url, "api_key": "sk_sandbox_" + "c" * 24})
            payment_method_fee_set(provider_slug="sandbox", fixed=30, basis_points=100, passed_to_buyer=True)
        client = Client(HTTP_HOST="alpha.kameng.test",
                        HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")

        def place(sku_id, contact, quantity=1):
            return client.post("/api/v1/orders/", {
                "lines": [{"sku_id": sku_id, "quantity": quantity}], "contact": contact, "query_password": "1234",
                "payment": {"provider": "sandbox"}}, content_type="application/json")

        placed = place(sku.pk, "fee@example.com")
        assert placed.status_code == 201, placed.content
        payment = placed.json()["payment"]
        assert (payment["order_total"], payment["fee"], payment["amount"]) == (1000, 40, 1040)
        assert payment["fee_passed_to_buyer"] is True and payment["url"].startswith(f"{base_url}/pay/")

        with tenant_context(alpha):  # a changed rule applies to the next payment at once (the cache forgets it)
            add_keys(sku, ["SECOND-KEY"])
            payment_method_fee_set(provider_slug="sandbox", fixed=0, basis_points=500, passed_to_buyer=True)
        again = place(sku.pk, "fee2@example.com")
        assert again.status_code == 201, again.content
        assert (again.json()["payment"]["fee"], again.json()["payment"]["amount"]) == (50, 1050)

        with tenant_context(alpha):  # the keys taken in advance are the rows' own, in the order they were made
            made = list(Payment.objects.order_by("id").values_list("id", "order__number"))
        assert made == [(payment["payment_id"], placed.json()["number"]),
                        (again.json()["payment"]["payment_id"], again.json()["number"])]

        with tenant_context(alpha):
            add_keys(sku, ["THIRD-KEY"])
        # the payment's INSERT went to the database with the key claim that found too few keys
        short = place(sku.pk, "short@example.com", quantity=2)
        assert short.status_code == 409 and "Only 1 left" in short.json()["detail"], short.content
        last_key = place(sku.pk, "late@example.com")
        assert last_key.status_code == 201, last_key.content
        assert place(sku.pk, "later@example.com").status_code == 409
        with tenant_context(alpha):
            assert Payment.objects.count() == 3
            assert not Order.objects.filter(contact__in=["short@example.com", "later@example.com"]).exists()
            sku.refresh_from_db()
            assert (sku.available_count, sku.reserved_count) == (0, 3)
            ours = {str(pk): external for pk, external in Payment.objects.values_list("id", "external_id")}
        # each payment asked its gateway before it was written, and was written with the
        # gateway's id; the order refused at its key claim (after the call) left the gateway
        # a pending payment that no buyer was shown and nothing refers to; the one refused
        # by the stock count before any transaction never reached the gateway
        at_gateway = {row["reference"]: (row["id"], row["status"])
                      for row in server.app.store.read("SELECT id, reference, status FROM payments")}
        assert {ref: ours[ref] for ref in ours} == {ref: at_gateway[ref][0] for ref in ours}
        orphans = [state for ref, state in at_gateway.items() if ref not in ours]
        assert [status for _, status in orphans] == ["pending"]

        gift = place(free.pk, "gift@example.com")
        assert gift.status_code == 201, gift.content
        assert gift.json()["status"] == "delivered" and gift.json()["payment"] is None
        assert gift.json()["payment_error"]["status"] == 400  # nothing to pay: no method takes it
        with tenant_context(alpha):
            assert not Payment.objects.filter(order__contact="gift@example.com").exists()
    finally:
        server.stop()


def test_a_provider_that_breaks_while_asked_leaves_no_order_behind(alpha, alice, monkeypatch):
    """The gateway is asked inside the order's transaction (decision 0053): a provider
    that fails in an unexpected way (a bug, not a PaymentError) takes the whole order
    back — no order, no payment, the keys still free — instead of leaving an order
    committed without its payment."""
    from platform_core.orders.models import Order
    from plugins.payments.sandbox.plugin import SandboxPaymentPlugin

    with tenant_context(alpha):
        sku = make_product(keys=2, price=900)
        plugin_configure(shop=alpha, slug="sandbox", enable=True,
                         data={"gateway_url": "http://127.0.0.1:9", "api_key": "sk_sandbox_" + "d" * 24})

    def broken(self, order, payment, *, return_url, notify_url):
        raise RuntimeError("a provider's bug")

    monkeypatch.setattr(SandboxPaymentPlugin, "start", broken)
    client = Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}",
                    raise_request_exception=False)
    placed = client.post("/api/v1/orders/", {
        "lines": [{"sku_id": sku.pk, "quantity": 1}], "contact": "bug@example.com", "query_password": "1234",
        "payment": {"provider": "sandbox"}}, content_type="application/json")
    assert placed.status_code == 500
    with tenant_context(alpha):
        assert not Order.objects.filter(contact="bug@example.com").exists() and not Payment.objects.exists()
        sku.refresh_from_db()
        assert (sku.available_count, sku.reserved_count) == (2, 0)
