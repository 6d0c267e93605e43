"""PayPal end to end against the fake PayPal over real HTTP: OAuth token -> order ->
buyer approves -> webhook -> capture -> order delivered; refunds; status queries and
the poller; webhook verification through PayPal's API refusing every bad event;
timeouts never pay twice; secrets never leak."""
from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client
from django_tenants.utils import tenant_context

from platform_core.inventory.models import CardKey
from platform_core.orders.models import Order
from platform_core.orders.services import order_delivered_items, order_refund
from platform_core.payments.models import Payment, Refund, WebhookEvent
from platform_core.payments.services import payment_start, payments_poll_pending, provider_for
from plugins.payment import PaymentMisconfigured
from plugins.services import PluginError, plugin_configure
from tests.conftest import host_of
from tests.fakegateways.paypal import CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID
from tests.payments.conftest import make_stock, place_order
from tests.payments.gateways.conftest import enable_paypal

HOOK = "/hooks/payments/paypal/"
RETURN_URL = "http://alpha.kameng.test/order/return/"


def start(shop, bridge, *, quantity=2, keys=3, price=1000):
    sku, plaintexts = make_stock(shop, keys=keys, price=price)
    order = place_order(sku, quantity=quantity)
    payment, action = payment_start(order=order, provider_slug="paypal", return_url=RETURN_URL,
                                    notify_url=bridge.url(HOOK))
    return sku, plaintexts, order, payment, action


def deliver(bridge, fake, event, **options):
    return bridge.call(lambda: fake.notify(bridge.url(HOOK), event, **options))


def post(client, body: bytes, headers: dict[str, str]):
    extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return client.post(HOOK, data=body, content_type="application/json", headers=extra)


# --- the happy path ----------------------------------------------------------------------

def test_buyer_approves_on_paypal_the_order_is_captured_and_delivered(paypal_shop, fake_paypal, bridge):
    sku, plaintexts, order, payment, action = start(paypal_shop, bridge)
    assert action.kind == "redirect" and action.url == f"{fake_paypal.base_url}/checkoutnow?token={action.external_id}"
    payment.refresh_from_db()
    assert payment.external_id == action.external_id and payment.status == "pending"

    token_request, = fake_paypal.received("POST", r"/v1/oauth2/token")
    assert token_request.headers["Authorization"] == \
        "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert token_request.form() == {"grant_type": "client_credentials"}
    created, = fake_paypal.received("POST", r"/v2/checkout/orders")
    assert created.headers["Authorization"].startswith("Bearer A21AA")
    assert created.headers["Content-Type"] == "application/json"
    assert created.headers["PayPal-Request-Id"] == f"kameng-shop_alpha-pay-{payment.pk}-{order.number}"
    assert created.json() == {
        "intent": "CAPTURE",
        "purchase_units": [{"reference_id": str(payment.pk), "custom_id": str(payment.pk),
                            "description": f"Order {order.number}",
                            "amount": {"currency_code": "CNY", "value": "20.00"}}],
        "payment_source": {"paypal": {"experience_context": {
            "return_url": RETURN_URL, "cancel_url": RETURN_URL, "user_action": "PAY_NOW",
            "shipping_preference": "NO_SHIPPING"}}},
    }

    approved = fake_paypal.approve(payment.external_id)
    assert deliver(bridge, fake_paypal, approved).status_code == 200
    capture, = fake_paypal.received("POST", r"/v2/checkout/orders/.*/capture")
    assert capture.headers["PayPal-Request-Id"] == f"kameng-shop_alpha-capture-{payment.external_id}"
    verify, = fake_paypal.received("POST", r"/v1/notifications/verify-webhook-signature")
    assert verify.json()["webhook_id"] == WEBHOOK_ID and verify.json()["webhook_event"] == approved

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.DELIVERED and payment.status == "succeeded"
    delivered = [item.secret for item in order_delivered_items(order)]
    assert len(delivered) == 2 and set(delivered) <= set(plaintexts)
    assert CardKey.objects.filter(sku=sku, status="sold").count() == 2
    assert fake_paypal.orders[payment.external_id]["status"] == "COMPLETED"

    # PayPal also reports the capture; nothing more happens
    assert deliver(bridge, fake_paypal, fake_paypal.capture_completed_event(payment.external_id)).status_code == 200
    assert sorted(WebhookEvent.objects.values_list("result", flat=True)) == ["already_succeeded", "paid"]
    assert len(fake_paypal.captures) == 1 and order.events.filter(kind="order.paid").count() == 1


def test_the_token_is_cached_and_renewed_when_paypal_drops_it(paypal_shop, fake_paypal, bridge):
    start(paypal_shop, bridge)
    start(paypal_shop, bridge)
    assert len(fake_paypal.received("POST", r"/v1/oauth2/token")) == 1
    fake_paypal.expire_tokens()  # revoked or expired early
    start(paypal_shop, bridge)
    assert len(fake_paypal.received("POST", r"/v1/oauth2/token")) == 2
    assert len(fake_paypal.orders) == 3


def test_an_approval_sent_again_reads_the_captured_order_back(paypal_shop, fake_paypal, bridge):
    _, _, order, payment, _ = start(paypal_shop, bridge)
    deliver(bridge, fake_paypal, fake_paypal.approve(payment.external_id))
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    # PayPal sends the approval once more (a new event id): the capture carries the same
    # PayPal-Request-Id, so PayPal answers the first capture again
    again = fake_paypal.approve(payment.external_id)
    assert deliver(bridge, fake_paypal, again).status_code == 200
    assert len(fake_paypal.captures) == 1
    assert WebhookEvent.objects.get(event_id=again["id"]).result == "already_succeeded"
    # days later PayPal has forgotten the request id: capturing is refused with
    # ORDER_ALREADY_CAPTURED and the adapter reads the order back instead
    fake_paypal.replies.clear()
    late = fake_paypal.approve(payment.external_id)
    assert deliver(bridge, fake_paypal, late).status_code == 200
    assert len(fake_paypal.captures) == 1
    assert WebhookEvent.objects.get(event_id=late["id"]).result == "already_succeeded"
    assert fake_paypal.received("GET", rf"/v2/checkout/orders/{payment.external_id}")


# --- refunds ---------------------------------------------------------------------------

def paid(shop, fake, bridge):
    sku, plaintexts, order, payment, action = start(shop, bridge)
    deliver(bridge, fake, fake.approve(payment.external_id))
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    return order, payment


def test_refund_partial_then_full_through_paypal(paypal_shop, fake_paypal, bridge):
    order, payment = paid(paypal_shop, fake_paypal, bridge)
    capture_id = next(iter(fake_paypal.captures))
    order_refund(order=order, amount=500, reason="One key did not work", actor="staff@alpha.example")
    first, = fake_paypal.received("POST", r"/v2/payments/captures/.*/refund")
    assert first.path == f"/v2/payments/captures/{capture_id}/refund"
    assert first.json() == {"amount": {"currency_code": "CNY", "value": "5.00"}, "custom_id": str(payment.pk)}
    assert first.headers["PayPal-Request-Id"] == f"kameng-shop_alpha-refund-{payment.pk}-0-500"
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "succeeded" and refund.external_id in fake_paypal.refunds
    # PayPal reports it; matched, not counted twice
    assert deliver(bridge, fake_paypal, fake_paypal.refund_event(refund.external_id)).status_code == 200
    assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_confirmed"

    order_refund(order=order, amount=1500, reason="Changed their mind", actor="staff@alpha.example")
    order.refresh_from_db()
    payment.refresh_from_db()
    assert payment.refunded_amount == 2000 and order.status == Order.Status.REFUNDED
    assert fake_paypal.captures[capture_id]["status"] == "REFUNDED"
    with pytest.raises(Exception):
        order_refund(order=order, amount=1, reason="again", actor="staff@alpha.example")
    assert len(fake_paypal.received("POST", r"/v2/payments/captures/.*/refund")) == 2


def test_a_refund_made_in_the_paypal_console_is_recorded(paypal_shop, fake_paypal, bridge):
    order, payment = paid(paypal_shop, fake_paypal, bridge)
    event = fake_paypal.refund_in_console(payment.external_id, "20.00")
    assert "custom_id" not in event["resource"]  # the adapter asks the capture whose it is
    assert deliver(bridge, fake_paypal, event).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and order.refunded_amount == 2000
    assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_recorded"
    assert fake_paypal.received("GET", r"/v2/payments/captures/.*")


def test_a_refund_event_before_the_payment_is_answered_409_and_applied_later(paypal_shop, fake_paypal, bridge):
    _, _, order, payment, _ = start(paypal_shop, bridge)
    approved = fake_paypal.approve(payment.external_id)
    # the capture happens at PayPal (say, by the poller of another worker) and is refunded at once
    fake_paypal._capture(payment.external_id)
    refunded = fake_paypal.refund_in_console(payment.external_id, "20.00")
    assert deliver(bridge, fake_paypal, refunded).status_code == 409
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT and not Refund.objects.exists()
    assert deliver(bridge, fake_paypal, approved).status_code == 200  # reads the captured order back
    assert deliver(bridge, fake_paypal, refunded).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED


# --- queries, recovery, idempotency ------------------------------------------------------

def test_fetch_status_and_the_poller_capture_an_approved_order_whose_webhook_was_lost(paypal_shop, fake_paypal,
                                                                                      bridge):
    _, _, order, payment, _ = start(paypal_shop, bridge)
    provider = provider_for("paypal")
    assert provider.fetch_status(payment).status == "pending"
    assert not fake_paypal.captures
    fake_paypal.approve(payment.external_id)  # the approval event never reaches the shop
    Payment.objects.filter(pk=payment.pk).update(created_at=payment.created_at - timedelta(minutes=10))
    assert payments_poll_pending() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED and len(fake_paypal.captures) == 1
    status = provider.fetch_status(payment)
    assert (status.status, status.amount, status.currency) == ("succeeded", 2000, "CNY")
    assert len(fake_paypal.captures) == 1


def test_a_voided_order_is_reported_failed(paypal_shop, fake_paypal, bridge):
    _, _, order, payment, _ = start(paypal_shop, bridge)
    fake_paypal.orders[payment.external_id]["status"] = "VOIDED"
    assert provider_for("paypal").fetch_status(payment).status == "failed"


def test_a_timeout_on_create_is_retried_with_the_same_request_id_and_makes_one_order(paypal_shop, fake_paypal,
                                                                                    bridge, settings):
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (3.05, 1.0)
    fake_paypal.stall("POST", r"/v2/checkout/orders", 2.0)
    _, _, order, payment, action = start(paypal_shop, bridge)
    sent = fake_paypal.received("POST", r"/v2/checkout/orders")
    assert len(sent) == 2 and sent[0].body == sent[1].body
    assert sent[0].headers["PayPal-Request-Id"] == sent[1].headers["PayPal-Request-Id"]
    assert list(fake_paypal.orders) == [action.external_id]


def test_a_timeout_on_capture_is_retried_and_captures_once(paypal_shop, fake_paypal, bridge, settings):
    _, _, order, payment, _ = start(paypal_shop, bridge)
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (3.05, 1.0)
    fake_paypal.stall("POST", r"/v2/checkout/orders/.*/capture", 2.0)
    assert deliver(bridge, fake_paypal, fake_paypal.approve(payment.external_id)).status_code == 200
    assert len(fake_paypal.received("POST", r"/v2/checkout/orders/.*/capture")) == 2
    assert len(fake_paypal.captures) == 1
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


def test_paypal_down_during_the_approval_webhook_answers_503_so_paypal_retries(paypal_shop, fake_paypal, bridge):
    _, _, order, payment, _ = start(paypal_shop, bridge)
    approved = fake_paypal.approve(payment.external_id)
    fake_paypal.fail("POST", r"/v2/checkout/orders/.*/capture", 503, times=3)
    assert deliver(bridge, fake_paypal, approved).status_code == 503
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT and not WebhookEvent.objects.exists()
    assert deliver(bridge, fake_paypal, approved).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


# --- credentials and settings ----------------------------------------------------------

def test_a_wrong_secret_is_refused_by_paypal_and_explained(alpha, fake_paypal, bridge):
    wrong = "EWrongSecret-" + "w" * 40
    with tenant_context(alpha):
        enable_paypal(alpha, client_secret=wrong)
        sku, _ = make_stock(alpha)
        order = place_order(sku)
        with pytest.raises(PaymentMisconfigured) as error:
            payment_start(order=order, provider_slug="paypal", return_url=RETURN_URL, notify_url=bridge.url(HOOK))
        assert "check the PayPal settings" in error.value.message and wrong not in error.value.message
        assert not fake_paypal.orders and not fake_paypal.received("POST", r"/v2/checkout/orders")
        with pytest.raises(PaymentMisconfigured):
            provider_for("paypal").test_connection()


def test_test_connection_fetches_a_token(paypal_shop, fake_paypal):
    assert provider_for("paypal").test_connection() == \
        "Connected to PayPal (sandbox): the client ID and secret work."
    assert len(fake_paypal.received("POST", r"/v1/oauth2/token")) == 1


def test_the_environment_chooses_paypals_host(alpha, settings):
    settings.KAMENG_PAYPAL_API_BASE = ""
    with tenant_context(alpha):
        enable_paypal(alpha, environment="live")
        assert provider_for("paypal").base_url == "https://api-m.paypal.com"
        enable_paypal(alpha, environment="sandbox")
        assert provider_for("paypal").base_url == "https://api-m.sandbox.paypal.com"


@pytest.mark.parametrize("field, value, words", [
    ("client_id", "short", "20 to 128 letters"),
    ("client_secret", "has spaces in it and more than twenty", "20 to 128 letters"),
    ("client_secret", CLIENT_ID, "This is the client ID again"),
    ("webhook_id", "WH-1AB23456CD789012E-3FG45678HI901234J", "ID of one webhook event"),
    ("webhook_id", "lower-case-id", "capital letters and digits"),
    ("environment", "production", "Select a valid choice"),
])
def test_settings_refuse_wrong_formats_with_a_clear_message(alpha, field, value, words):
    data = {"environment": "sandbox", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "webhook_id": WEBHOOK_ID, field: value}
    with tenant_context(alpha):
        with pytest.raises(PluginError) as error:
            plugin_configure(shop=alpha, slug="paypal", data=data, enable=True)
        assert words in " ".join(error.value.errors[field])


# --- bad webhooks ------------------------------------------------------------------------

@pytest.fixture
def pending(paypal_shop, fake_paypal, bridge):
    sku, _, order, payment, _ = start(paypal_shop, bridge)
    approved = fake_paypal.approve(payment.external_id)
    return {"sku": sku, "order": order, "payment": payment, "event": approved,
            "client": Client(HTTP_HOST=host_of(paypal_shop))}


def assert_untouched(pending, fake_paypal):
    order, payment = pending["order"], pending["payment"]
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT and payment.status == "pending"
    assert CardKey.objects.filter(sku=pending["sku"], status="sold").count() == 0
    assert not WebhookEvent.objects.exists()
    assert not fake_paypal.captures  # nothing was captured on a bad event's word


def test_the_genuine_event_is_accepted(pending, fake_paypal):
    assert post(pending["client"], *fake_paypal.signed(pending["event"])).status_code == 200
    pending["order"].refresh_from_db()
    assert pending["order"].status == Order.Status.DELIVERED


@pytest.mark.parametrize("case", [
    "forged_key", "another_webhook", "stale", "future", "no_headers", "missing_signature", "bad_algo",
    "bad_time", "tampered_order", "tampered_signature", "not_json", "no_resource", "bad_event_id",
])
def test_bad_webhooks_are_rejected_with_400_and_change_nothing(pending, fake_paypal, case, caplog):
    client, event = pending["client"], pending["event"]
    body, headers = fake_paypal.signed(event)
    if case == "forged_key":
        body, headers = fake_paypal.signed(event, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    elif case == "another_webhook":  # signed by PayPal, for another merchant's webhook
        body, headers = fake_paypal.signed(event, webhook_id="9XX597110X687430LKGECAZZ")
    elif case == "stale":
        body, headers = fake_paypal.signed(event, when=datetime.now(timezone.utc) - timedelta(seconds=700))
    elif case == "future":
        body, headers = fake_paypal.signed(event, when=datetime.now(timezone.utc) + timedelta(seconds=700))
    elif case == "no_headers":
        headers = {}
    elif case == "missing_signature":
        headers.pop("PAYPAL-TRANSMISSION-SIG")
    elif case == "bad_algo":
        headers["PAYPAL-AUTH-ALGO"] = "MD5withRSA"
    elif case == "bad_time":
        headers["PAYPAL-TRANSMISSION-TIME"] = "yesterday"
    elif case == "tampered_order":  # another order id under a genuine signature
        forged = json.loads(body)
        forged["resource"]["id"] = "ZZZZZZZZZZZZZZZZZ"
        body = json.dumps(forged).encode()
    elif case == "tampered_signature":
        headers["PAYPAL-TRANSMISSION-SIG"] = base64.b64encode(b"x" * 256).decode()
    elif case == "not_json":
        body = b"\xff not json"
    elif case == "no_resource":
        body = json.dumps({"id": "WH-1", "event_type": "CHECKOUT.ORDER.APPROVED"}).encode()
    else:
        forged = json.loads(body)
        forged["id"] = "../../x"
        body = json.dumps(forged).encode()
    with caplog.at_level(logging.WARNING, logger="platform_core.payments.views"):
        response = post(client, body, headers)
    assert response.status_code == 400, response.content
    assert_untouched(pending, fake_paypal)
    assert any("payment webhook rejected" in r.getMessage() and "provider=paypal" in r.getMessage()
               for r in caplog.records)


def test_a_replayed_event_changes_nothing_the_second_time(pending, fake_paypal):
    body, headers = fake_paypal.signed(pending["event"])
    for _ in range(3):
        assert post(pending["client"], body, headers).status_code == 200
    assert WebhookEvent.objects.count() == 1 and len(fake_paypal.captures) == 1
    assert pending["order"].events.filter(kind="order.paid").count() == 1


def test_a_denial_arriving_after_the_capture_changes_nothing(pending, fake_paypal):
    assert post(pending["client"], *fake_paypal.signed(pending["event"])).status_code == 200
    capture = next(iter(fake_paypal.captures.values()))
    denied = fake_paypal.event("PAYMENT.CAPTURE.DENIED", "capture", {**capture, "status": "DECLINED"})
    assert post(pending["client"], *fake_paypal.signed(denied)).status_code == 200
    pending["payment"].refresh_from_db()
    assert pending["payment"].status == "succeeded"


def test_another_shops_webhook_id_is_worthless_here(pending, fake_paypal, bravo):
    with tenant_context(bravo):
        enable_paypal(bravo, webhook_id="BRAVO597110X687430LKGEC")
        response = post(Client(HTTP_HOST=host_of(bravo)), *fake_paypal.signed(pending["event"]))
        assert response.status_code == 400  # PayPal signed it for alpha's webhook, not bravo's
    assert_untouched(pending, fake_paypal)


# --- secrets never leak ----------------------------------------------------------------

def test_secrets_and_tokens_appear_in_no_log_or_answer(paypal_shop, fake_paypal, bridge, caplog):
    with caplog.at_level(logging.DEBUG):
        order, payment = paid(paypal_shop, fake_paypal, bridge)
        order_refund(order=order, amount=2000, reason="test", actor="staff@alpha.example")
        provider_for("paypal").fetch_status(payment)
        provider_for("paypal").test_connection()
        post(Client(HTTP_HOST=host_of(paypal_shop)), *fake_paypal.signed(fake_paypal.event(
            "CHECKOUT.ORDER.APPROVED", "checkout-order", {"id": "AAAAAAAAAAAAAAAAA"}), webhook_id="X" * 20))
    assert len([r for r in caplog.records if r.name == "kameng.payments.paypal"]) >= 6
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    answers = b"".join(answer.body for _, answer in bridge.log)
    tokens = list(fake_paypal.tokens)
    assert len(tokens) == 2
    for secret in (CLIENT_SECRET, base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(), *tokens):
        assert secret not in text and secret.encode() not in answers


def test_api_test_connection(alpha, alice, bob, fake_paypal):
    from rest_framework.authtoken.models import Token

    api = Client(HTTP_HOST=host_of(alpha), HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    url = "/api/v1/plugins/paypal/test-connection/"
    assert api.post(url).json() == {"ok": False, "message": "Save the settings of PayPal first, then test the "
                                                            "connection."}
    with tenant_context(alpha):
        enable_paypal(alpha)
    answer = api.post(url)
    assert answer.status_code == 200 and answer.json() == {
        "ok": True, "message": "Connected to PayPal (sandbox): the client ID and secret work."}
    fake_paypal.client_secret = "ERotated-" + "r" * 40
    answer = api.post(url)
    assert answer.status_code == 400 and "refused the shop's client ID and secret" in answer.json()["message"]
    assert CLIENT_SECRET not in answer.content.decode()
    assert api.post("/api/v1/plugins/nope/test-connection/").status_code == 404
    wallet = api.post("/api/v1/plugins/wallet/test-connection/")
    assert wallet.status_code == 400 and wallet.json()["message"] == "Wallet balance offers no connection test."
    outsider = Client(HTTP_HOST=host_of(alpha), HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    assert outsider.post(url).status_code == 403
    assert len(fake_paypal.received("POST", r"/v1/oauth2/token")) == 2


def test_the_buyer_back_on_the_order_page_gets_the_order_captured_without_a_webhook(
        paypal_shop, fake_paypal, bridge, django_capture_on_commit_callbacks):
    _, _, order, payment, _ = start(paypal_shop, bridge)
    fake_paypal.approve(payment.external_id)  # approved at PayPal; its webhook is slow or lost
    browser = Client(HTTP_HOST=host_of(paypal_shop))
    with django_capture_on_commit_callbacks(execute=True):
        landing = browser.get(f"/order/{order.number}/?t={order.access_token}&token={payment.external_id}")
    assert landing.status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED and len(fake_paypal.captures) == 1
    assert browser.get(f"/order/{order.number}/status.json").json() == {"status": "delivered"}


def test_the_order_page_asks_the_gateway_at_most_every_ten_seconds(paypal_shop, fake_paypal, bridge,
                                                                   django_capture_on_commit_callbacks):
    _, _, order, payment, _ = start(paypal_shop, bridge)
    browser = Client(HTTP_HOST=host_of(paypal_shop))
    with django_capture_on_commit_callbacks(execute=True):
        browser.get(f"/order/{order.number}/?t={order.access_token}")
        for _ in range(5):  # the page polls every second
            assert browser.get(f"/order/{order.number}/status.json").json() == {"status": "pending_payment"}
    assert len(fake_paypal.received("GET", rf"/v2/checkout/orders/{payment.external_id}")) == 1
    assert not fake_paypal.captures  # not approved yet: nothing to capture
    from django.core.cache import cache

    cache.delete(f"payments:check:{order.pk}")  # ten seconds later
    with django_capture_on_commit_callbacks(execute=True):
        browser.get(f"/order/{order.number}/status.json")
    assert len(fake_paypal.received("GET", rf"/v2/checkout/orders/{payment.external_id}")) == 2


def test_a_declined_capture_fails_the_payment_and_the_buyer_may_pay_again(paypal_shop, fake_paypal, bridge):
    _, _, order, payment, _ = start(paypal_shop, bridge)
    fake_paypal.decline_captures = True
    assert deliver(bridge, fake_paypal, fake_paypal.approve(payment.external_id)).status_code == 200
    payment.refresh_from_db()
    order.refresh_from_db()
    assert payment.status == "failed" and order.status == Order.Status.PENDING_PAYMENT
    assert WebhookEvent.objects.get().result == "failed" and not fake_paypal.captures
    assert provider_for("paypal").fetch_status(payment).status == "failed"
    fake_paypal.decline_captures = False
    second, action = payment_start(order=order, provider_slug="paypal", return_url=RETURN_URL,
                                   notify_url=bridge.url(HOOK))
    deliver(bridge, fake_paypal, fake_paypal.approve(second.external_id))
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


def test_yen_goes_to_paypal_without_decimals(paypal_shop, fake_paypal, bridge):
    paypal_shop.currency = "JPY"
    paypal_shop.save(update_fields=["currency"])
    _, _, order, payment, _ = start(paypal_shop, bridge, price=1500)
    assert (order.currency, order.total) == ("JPY", 3000)
    created, = fake_paypal.received("POST", r"/v2/checkout/orders")
    assert created.json()["purchase_units"][0]["amount"] == {"currency_code": "JPY", "value": "3000"}
    deliver(bridge, fake_paypal, fake_paypal.approve(payment.external_id))
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    order_refund(order=order, amount=1000, reason="one key", actor="staff@alpha.example")
    refund, = fake_paypal.received("POST", r"/v2/payments/captures/.*/refund")
    assert refund.json()["amount"] == {"currency_code": "JPY", "value": "1000"}
