"""The sandbox provider end to end: shop -> gateway -> pay page -> signed webhook ->
order delivered, over real HTTP; refunds through the gateway; every kind of bad
webhook refused or ignored without a state change."""
from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
import requests
from django.test import Client
from django_tenants.utils import tenant_context

from platform_core.inventory.models import CardKey
from platform_core.orders.models import Order
from platform_core.orders.services import order_delivered_items, order_refund
from platform_core.payments.models import Payment, Refund, WebhookEvent
from platform_core.payments.services import (
    payment_providers,
    payment_start,
    payments_poll_pending,
    provider_for,
    record_event,
)
from plugins.payment import GatewayEvent, PaymentError, WebhookRejected
from plugins.payments.sandbox.plugin import verify_signature
from plugins.services import PluginError, plugin_configure, plugin_disable
from sandbox_gateway import serve_in_thread, signature_header, webhook_secret_for
from tests.conftest import host_of
from tests.raw_http import accepted, read_request
from tests.payments.conftest import (
    WEBHOOK_PATH,
    enable_sandbox,
    event_body,
    make_stock,
    new_api_key,
    place_order,
    signed_post,
)

RETURN_URL = "http://alpha.kameng.test/order/return/"


def start_sandbox_payment(shop, bridge, *, quantity=2, keys=3, price=1000):
    sku, plaintexts = make_stock(shop, keys=keys, price=price)
    order = place_order(sku, quantity=quantity)
    payment, action = payment_start(order=order, provider_slug="sandbox", return_url=RETURN_URL,
                                    notify_url=bridge.url(WEBHOOK_PATH))
    return sku, plaintexts, order, payment, action


def click(url: str, button: str = "pay") -> requests.Response:
    return requests.post(f"{url}/{button}", allow_redirects=False, timeout=15)


def gateway_payment(gateway, api_key, external_id) -> dict:
    return requests.get(f"{gateway.base}/v1/payments/{external_id}", headers={"Authorization": f"Bearer {api_key}"},
                        timeout=10).json()


# --- the happy path ----------------------------------------------------------------------

def test_buyer_pays_on_the_gateway_and_the_order_is_delivered(sandbox_shop, gateway, api_key, bridge):
    sku, plaintexts, order, payment, action = start_sandbox_payment(sandbox_shop, bridge)
    assert action.kind == "redirect" and action.url.startswith(f"{gateway.base}/pay/pay_")
    payment.refresh_from_db()
    assert payment.external_id == action.external_id and payment.status == "pending"
    at_gateway = gateway_payment(gateway, api_key, payment.external_id)
    assert at_gateway["reference"] == str(payment.pk) and at_gateway["amount"] == 2000
    assert at_gateway["currency"] == "CNY" and at_gateway["description"] == f"Order {order.number}"

    page = requests.get(action.url, timeout=10)
    assert "20.00 CNY" in page.text and 'id="pay"' in page.text

    response = bridge.call(lambda: click(action.url))
    assert response.status_code == 303 and response.headers["Location"] == RETURN_URL
    (forwarded, answer), = bridge.log
    assert forwarded.path == WEBHOOK_PATH and answer.status == 200

    # by the time the buyer lands on the shop, the keys are there
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.DELIVERED and order.payment_method == "sandbox"
    assert payment.status == "succeeded" and payment.succeeded_at is not None
    delivered = [item.secret for item in order_delivered_items(order)]
    assert len(delivered) == 2 and set(delivered) <= set(plaintexts)
    assert CardKey.objects.filter(sku=sku, status="sold").count() == 2
    sku.refresh_from_db()
    assert (sku.available_count, sku.reserved_count, sku.sold_count) == (1, 0, 2)
    event = WebhookEvent.objects.get(provider="sandbox")
    assert event.kind == "payment.succeeded" and event.result == "paid" and event.payment_id == payment.pk
    assert event.event_id.startswith("evt_")


def test_the_same_webhook_twice_delivers_once(sandbox_shop, gateway, api_key, bridge):
    sku, _, order, payment, action = start_sandbox_payment(sandbox_shop, bridge)
    bridge.call(lambda: click(action.url))
    event_id = WebhookEvent.objects.get().event_id
    replay = bridge.call(lambda: requests.post(f"{gateway.base}/v1/test/replay/{event_id}",
                                               headers={"Authorization": f"Bearer {api_key}"}, timeout=15))
    assert replay.json()["delivered"] is True
    # the same event reaching record_event again: a duplicate, nothing changes
    raw = json.loads(bridge.log[0][0].body)
    again = record_event(provider="sandbox", event=GatewayEvent(
        event_id=event_id, kind="payment.succeeded", payment_reference=str(payment.pk),
        external_id=payment.external_id, amount=2000, currency="CNY", raw=raw))
    assert again == "duplicate"
    assert WebhookEvent.objects.count() == 1
    assert order.events.filter(kind="order.paid").count() == 1
    assert CardKey.objects.filter(sku=sku, status="sold").count() == 2


def test_buyer_fails_the_payment(sandbox_shop, gateway, bridge):
    sku, _, order, payment, action = start_sandbox_payment(sandbox_shop, bridge)
    response = bridge.call(lambda: click(action.url, "fail"))
    assert response.status_code == 303
    payment.refresh_from_db()
    order.refresh_from_db()
    assert payment.status == "failed" and order.status == Order.Status.PENDING_PAYMENT
    assert CardKey.objects.filter(sku=sku, status="reserved").count() == 2  # still held for another try


def test_refund_through_the_gateway_partial_then_full(sandbox_shop, gateway, api_key, bridge):
    sku, _, order, payment, action = start_sandbox_payment(sandbox_shop, bridge)
    bridge.call(lambda: click(action.url))

    order_refund(order=order, amount=500, reason="One key did not work", actor="staff@alpha.example")
    payment.refresh_from_db()
    order.refresh_from_db()
    assert payment.refunded_amount == 500 and order.refunded_amount == 500
    assert order.status == Order.Status.DELIVERED
    assert order.events.filter(kind="order.partially_refunded").exists()
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "succeeded" and refund.external_id.startswith("re_")
    # the gateway tells the shop about the refund afterwards; it is matched, not counted twice
    bridge.pump(1)
    assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_confirmed"
    payment.refresh_from_db()
    assert payment.refunded_amount == 500

    order_refund(order=order, amount=1500, reason="Customer changed their mind", actor="staff@alpha.example")
    bridge.pump(1)
    payment.refresh_from_db()
    order.refresh_from_db()
    assert payment.refunded_amount == 2000 and order.status == Order.Status.REFUNDED
    assert list(WebhookEvent.objects.filter(kind="refund.succeeded").values_list("result", flat=True)) == \
        ["refund_confirmed", "refund_confirmed"]
    at_gateway = gateway_payment(gateway, api_key, payment.external_id)
    assert at_gateway["amount_refunded"] == 2000 and at_gateway["status"] == "succeeded"
    with pytest.raises(Exception):  # nothing left to refund
        order_refund(order=order, amount=1, reason="again", actor="staff@alpha.example")


def test_refund_made_at_the_gateway_is_recorded(sandbox_shop, gateway, api_key, bridge):
    _, _, order, payment, action = start_sandbox_payment(sandbox_shop, bridge)
    bridge.call(lambda: click(action.url))
    requests.post(f"{gateway.base}/v1/payments/{payment.external_id}/refunds", data={"amount": 2000},
                  headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    bridge.pump(1)
    order.refresh_from_db()
    assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_recorded"
    assert order.status == Order.Status.REFUNDED and order.refunded_amount == 2000


def test_a_lost_webhook_is_recovered_by_polling(sandbox_shop, gateway, bridge):
    sku, _, order, payment, action = start_sandbox_payment(sandbox_shop, bridge)
    bridge.close()  # the shop is unreachable when the buyer pays
    assert click(action.url).status_code == 303
    provider = provider_for("sandbox")
    status = provider.fetch_status(payment)
    assert (status.status, status.amount, status.currency) == ("succeeded", 2000, "CNY")
    Payment.objects.filter(pk=payment.pk).update(created_at=payment.created_at - timedelta(minutes=10))
    assert payments_poll_pending() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


# --- provider errors and settings ----------------------------------------------------------

def test_gateway_down_is_a_plain_retryable_error(alpha, api_key):
    server, base = serve_in_thread()
    server.stop()  # nothing listens there any more
    with tenant_context(alpha):
        plugin_configure(shop=alpha, slug="sandbox", data={"gateway_url": base, "api_key": api_key}, enable=True)
        sku, _ = make_stock(alpha)
        order = place_order(sku)
        with pytest.raises(PaymentError) as error:
            payment_start(order=order, provider_slug="sandbox", return_url=RETURN_URL,
                          notify_url="http://alpha.kameng.test/hooks/payments/sandbox/")
        assert error.value.retryable and error.value.message.startswith("The sandbox gateway is not reachable")
        assert api_key not in error.value.message


@pytest.fixture
def raw_gateway():
    """A socket that plays a broken gateway: ``answer`` bytes sent back (None: silence)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    state = {"answer": None, "requests": []}

    def serve():
        for conn in accepted(listener):
            with conn:
                request = read_request(conn)
                if request is None:
                    continue
                head, body, _ = request
                state["requests"].append(head + b"\r\n\r\n" + body)
                if state["answer"] is None:
                    time.sleep(1.5)  # longer than the shortened read timeout
                else:
                    conn.sendall(state["answer"])

    threading.Thread(target=serve, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    yield state
    listener.close()


@pytest.mark.parametrize(("answer", "message"), [
    (None, "The sandbox gateway did not answer in time."),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nnot json!", "The sandbox gateway had a problem."),
    (b"HTTP/1.0 502 Bad Gateway\r\nContent-Length: 2\r\n\r\n{}", "The sandbox gateway had a problem."),
    (b"garbage that is no HTTP at all\r\n\r\n", "Could not talk to the sandbox gateway."),
])
def test_a_broken_gateway_is_a_retryable_error_and_the_order_keeps_its_keys(alpha, api_key, raw_gateway,
                                                                             monkeypatch, answer, message):
    monkeypatch.setattr("plugins.payments.sandbox.plugin.TIMEOUT", (1, 0.5))
    raw_gateway["answer"] = answer
    with tenant_context(alpha):
        plugin_configure(shop=alpha, slug="sandbox", data={"gateway_url": raw_gateway["url"], "api_key": api_key},
                         enable=True)
        sku, _ = make_stock(alpha)
        order = place_order(sku)
        with pytest.raises(PaymentError) as error:
            payment_start(order=order, provider_slug="sandbox", return_url=RETURN_URL,
                          notify_url="http://alpha.kameng.test/hooks/payments/sandbox/")
        assert error.value.retryable and error.value.message.startswith(message)
        assert api_key not in error.value.message
        # the request on the wire: a form POST with the key as a bearer token
        sent = raw_gateway["requests"][-1].decode()
        assert sent.startswith("POST /v1/payments HTTP/1.1\r\n")
        assert f"Authorization: Bearer {api_key}\r\n" in sent
        assert "Content-Type: application/x-www-form-urlencoded\r\n" in sent
        assert f"reference={order.payments.get().pk}" in sent
        order.refresh_from_db()
        assert order.status == Order.Status.PENDING_PAYMENT
        reserved = CardKey.objects.filter(order_line__order=order, status=CardKey.Status.RESERVED).count()
        assert reserved == sum(line.quantity for line in order.lines.all()) > 0


def test_gateway_refusal_is_explained(sandbox_shop, bridge):
    sku, _ = make_stock(sandbox_shop)
    order = place_order(sku)
    with pytest.raises(PaymentError, match="notify_url must be an absolute"):
        payment_start(order=order, provider_slug="sandbox", return_url=RETURN_URL, notify_url="not-a-url")


@pytest.mark.parametrize("key, message", [
    ("pk_live_1234567890abcdef", "start with sk_sandbox_"),
    ("sk_sandbox_short", "16 to 64 letters or digits"),
    ("sk_sandbox_" + "x" * 15 + "!", "16 to 64 letters or digits"),
])
def test_settings_refuse_a_wrong_api_key(alpha, key, message):
    with tenant_context(alpha):
        with pytest.raises(PluginError) as error:
            plugin_configure(shop=alpha, slug="sandbox", data={"api_key": key}, enable=True)
        assert message in " ".join(error.value.errors["api_key"])


def test_settings_default_gateway_url_and_encrypted_key(alpha, settings):
    settings.KAMENG_SANDBOX_URL = "http://sandbox.internal:9000/"
    key = new_api_key()
    with tenant_context(alpha):
        config = plugin_configure(shop=alpha, slug="sandbox", data={"api_key": key}, enable=True)
        assert key not in json.dumps(config.settings) + json.dumps(config.secrets)
        provider = provider_for("sandbox")
        assert provider.gateway_url == "http://sandbox.internal:9000"
        assert provider.secret("api_key") == key


def test_sandbox_is_off_where_the_platform_switches_it_off(sandbox_shop, settings, api_key, gateway):
    settings.KAMENG_SANDBOX_ENABLED = False  # production's default
    from plugins.hooks import forget_enabled_cache

    forget_enabled_cache()
    assert "sandbox" not in [p.slug for p in payment_providers()]
    with pytest.raises(PluginError, match="switched off"):
        enable_sandbox(sandbox_shop, gateway, api_key)


# --- bad webhooks ------------------------------------------------------------------------

@pytest.fixture
def pending(sandbox_shop, gateway, api_key, bridge):
    """A sandbox payment waiting for its webhook, and the genuine event body for it."""
    sku, _, order, payment, action = start_sandbox_payment(sandbox_shop, bridge)
    obj = gateway_payment(gateway, api_key, payment.external_id)
    obj["status"] = "succeeded"
    return {"sku": sku, "order": order, "payment": payment, "object": obj,
            "client": Client(HTTP_HOST=host_of(sandbox_shop))}


def assert_untouched(pending):
    order, payment = pending["order"], pending["payment"]
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT and payment.status == "pending"
    assert CardKey.objects.filter(sku=pending["sku"], status="sold").count() == 0
    assert CardKey.objects.filter(sku=pending["sku"], status="reserved").count() == 2
    assert not order.events.filter(kind="order.paid").exists()


def test_the_genuine_event_is_accepted(pending, api_key):
    body = event_body("evt_" + "1" * 24, "payment.succeeded", pending["object"])
    assert signed_post(pending["client"], body, api_key).status_code == 200
    pending["order"].refresh_from_db()
    assert pending["order"].status == Order.Status.DELIVERED


@pytest.mark.parametrize("case", ["forged", "stale", "future", "no_header", "garbage_header", "bad_timestamp",
                                  "short_signature", "no_v1", "duplicate_t", "not_json", "json_array",
                                  "no_object", "bad_event_id", "amount_as_text", "body_changed"])
def test_bad_webhooks_are_rejected_with_400_logged_and_change_nothing(pending, api_key, case, caplog):
    good = event_body("evt_" + "2" * 24, "payment.succeeded", pending["object"])
    now = int(time.time())
    client = pending["client"]
    with caplog.at_level(logging.WARNING, logger="platform_core.payments.views"):
        if case == "forged":
            response = signed_post(client, good, api_key, secret="whsec_" + "0" * 64)
        elif case == "stale":
            response = signed_post(client, good, api_key, timestamp=now - 310)
        elif case == "future":
            response = signed_post(client, good, api_key, timestamp=now + 310)
        elif case == "no_header":
            response = client.post(WEBHOOK_PATH, data=good, content_type="application/json")
        elif case == "garbage_header":
            response = signed_post(client, good, api_key, header="garbage")
        elif case == "bad_timestamp":
            response = signed_post(client, good, api_key, header=f"t=soon,v1={'a' * 64}")
        elif case == "short_signature":
            response = signed_post(client, good, api_key, header=f"t={now},v1=abc")
        elif case == "no_v1":
            response = signed_post(client, good, api_key, header=f"t={now}")
        elif case == "duplicate_t":
            response = signed_post(client, good, api_key, header=f"t={now},t={now},v1={'a' * 64}")
        elif case == "not_json":
            response = signed_post(client, b"\xff\xfe not json", api_key)
        elif case == "json_array":
            response = signed_post(client, "[1, 2, 3]", api_key)
        elif case == "no_object":
            response = signed_post(client, json.dumps({"id": "evt_" + "3" * 24, "type": "payment.succeeded"}), api_key)
        elif case == "bad_event_id":
            response = signed_post(client, event_body("evt_../../x", "payment.succeeded", pending["object"]), api_key)
        elif case == "amount_as_text":
            response = signed_post(client, event_body("evt_" + "4" * 24, "payment.succeeded",
                                                      {**pending["object"], "amount": "2000"}), api_key)
        else:  # signed, then altered on the way
            header = signature_header(webhook_secret_for(api_key), now, good.encode())
            response = signed_post(client, good.replace("2000", "1"), api_key, header=header)
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("text/plain")
    assert not WebhookEvent.objects.exists()
    assert_untouched(pending)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("payment webhook rejected" in w and "shop=shop_alpha" in w and "provider=sandbox" in w
               for w in warnings), warnings
    assert not any(api_key in w or "whsec_" in w for w in warnings)


@pytest.mark.parametrize("offset, accepted", [(0, True), (300, True), (-300, True), (301, False), (-301, False)])
def test_signature_tolerance_is_300_seconds_both_ways(api_key, offset, accepted):
    from plugins.payments.sandbox import plugin

    assert plugin.webhook_secret_for(api_key) == webhook_secret_for(api_key)  # client and gateway agree
    body, now = b'{"id": "evt_1"}', 1_700_000_000
    header = signature_header(webhook_secret_for(api_key), now + offset, body)
    if accepted:
        verify_signature(secret=webhook_secret_for(api_key), header=header, body=body, now=now)
    else:
        with pytest.raises(WebhookRejected, match="300 seconds"):
            verify_signature(secret=webhook_secret_for(api_key), header=header, body=body, now=now)


@pytest.mark.parametrize("change, result", [
    ({"reference": "999999999", "id": "pay_" + "f" * 24}, "unknown_payment"),
    ({"reference": "9" * 30, "id": "pay_" + "e" * 24}, "unknown_payment"),  # past any database id
    ({"amount": 1999}, "amount_mismatch"),
    ({"currency": "USD"}, "amount_mismatch"),
])
def test_genuine_events_that_do_not_fit_are_ignored_and_logged(pending, api_key, change, result, caplog):
    body = event_body("evt_" + "5" * 24, "payment.succeeded", {**pending["object"], **change})
    with caplog.at_level(logging.WARNING):
        response = signed_post(pending["client"], body, api_key)
    assert response.status_code == 200  # the gateway must not retry it forever
    assert WebhookEvent.objects.get().result == result
    assert_untouched(pending)
    assert any(r.levelno >= logging.WARNING and r.name == "platform_core.payments.services" for r in caplog.records)


def test_unknown_event_types_are_answered_200_and_ignored(pending, api_key):
    body = event_body("evt_" + "6" * 24, "payout.created", {"id": "po_1"})
    assert signed_post(pending["client"], body, api_key).status_code == 200
    assert not WebhookEvent.objects.exists()
    assert_untouched(pending)


def test_webhook_for_an_unknown_or_disabled_provider_is_404(pending, api_key, alpha):
    body = event_body("evt_" + "7" * 24, "payment.succeeded", pending["object"])
    client = pending["client"]
    assert client.post("/hooks/payments/nope/", data=body, content_type="application/json").status_code == 404
    assert client.get(WEBHOOK_PATH).status_code == 405
    plugin_disable(shop=alpha, slug="sandbox")
    assert signed_post(client, body, api_key).status_code == 404
    assert_untouched(pending)


def test_another_shops_key_cannot_pay_this_shop(pending, bravo, gateway):
    """bravo runs the sandbox with its own key; its signature is worthless at alpha."""
    bravo_key = new_api_key()
    body = event_body("evt_" + "8" * 24, "payment.succeeded", pending["object"])
    assert signed_post(pending["client"], body, bravo_key).status_code == 400
    with tenant_context(bravo):
        enable_sandbox(bravo, gateway, bravo_key)
        response = signed_post(Client(HTTP_HOST=host_of(bravo)), body, bravo_key)
        assert response.status_code == 200  # genuine for bravo, but names no payment of bravo's
        assert WebhookEvent.objects.get().result == "unknown_payment"
    assert_untouched(pending)


def test_webhook_endpoint_needs_no_csrf_token(pending, api_key):
    client = Client(HTTP_HOST=pending["client"].defaults["HTTP_HOST"], enforce_csrf_checks=True)
    body = event_body("evt_" + "9" * 24, "payment.succeeded", pending["object"])
    assert signed_post(client, body, api_key).status_code == 200


def test_an_order_paid_twice_keeps_one_payment_and_refunds_the_other(sandbox_shop, gateway, api_key, bridge,
                                                                    django_capture_on_commit_callbacks):
    sku, _, order, first, first_action = start_sandbox_payment(sandbox_shop, bridge)
    second, second_action = payment_start(order=order, provider_slug="sandbox", return_url=RETURN_URL,
                                          notify_url=bridge.url(WEBHOOK_PATH))  # a second tab
    bridge.call(lambda: click(first_action.url))
    with django_capture_on_commit_callbacks(execute=True):  # the refund of the second runs on commit
        bridge.call(lambda: click(second_action.url))
    assert [answer.status for _, answer in bridge.log] == [200, 200]
    bridge.pump(1)  # the gateway confirms the refund
    assert CardKey.objects.filter(sku=sku, status="sold").count() == 2
    assert gateway_payment(gateway, api_key, second.external_id)["amount_refunded"] == 2000
