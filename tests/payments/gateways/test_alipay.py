"""Alipay end to end against a fake open-platform gateway over real HTTP: checkout (page,
wap, QR), signed notification -> order delivered, query, refunds; every kind of bad
notification refused without a state change; settings validation; no secret in logs."""
from __future__ import annotations

import json
import logging
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from django.test import Client
from django_tenants.utils import tenant_context

from platform_core.orders.models import Order
from platform_core.orders.services import order_refund
from platform_core.payments.models import Payment, Refund, WebhookEvent
from platform_core.payments.services import payments_poll_pending, provider_for
from plugins.payment import PaymentError, PaymentMisconfigured
from plugins.payments.alipay import signing
from plugins.payments.alipay.plugin import PRODUCTION_GATEWAY, SANDBOX_GATEWAY
from plugins.services import PluginError, plugin_configure
from tests.conftest import host_of
from tests.fakegateways.alipay import FakeAlipay, beijing_now, rsa_key
from tests.payments.gateways.china_helpers import (
    RETURN_URL,
    assert_delivered,
    assert_untouched,
    digits,
    start_payment,
)

HOOK = "/hooks/payments/alipay/"


@pytest.fixture
def alipay(settings):
    with FakeAlipay() as fake:
        settings.KAMENG_ALIPAY_API_BASE = fake.gateway_url  # the platform points Alipay at the fake
        yield fake
        assert fake.crashes == []


def settings_for(fake, app_id, *, key=None, checkout="page", **extra) -> dict:
    return {"app_id": app_id, "app_private_key": signing.private_key_text(key or rsa_key("alipay-app")),
            "alipay_public_key": fake.alipay_public_key_text, "checkout": checkout, "environment": "sandbox",
            **extra}


@pytest.fixture
def shop(alpha, alipay, bridge):
    """alpha with Alipay enabled against the fake; the fake knows the app's public key."""
    app_id = "2021" + digits(12)
    alipay.register_app(app_id, rsa_key("alipay-app").public_key())
    alipay.hosts[host_of(alpha)] = bridge.url("")
    with tenant_context(alpha):
        plugin_configure(shop=alpha, slug="alipay", data=settings_for(alipay, app_id), enable=True)
        yield SimpleNamespace(shop=alpha, app_id=app_id, fake=alipay, bridge=bridge, notify_url=bridge.url(HOOK),
                              client=Client(HTTP_HOST=host_of(alpha)))


def reconfigure(shop, **changes):
    return plugin_configure(shop=shop.shop, slug="alipay",
                            data=settings_for(shop.fake, shop.app_id, **changes), enable=True)


def redirect_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def post_notification(shop, params: dict, client=None):
    # form-encoded, as Alipay sends it
    return (client or shop.client).post(HOOK, data=urlencode(params), content_type="application/x-www-form-urlencoded")


# --- signing rules ----------------------------------------------------------------------------

def test_signed_string_is_sorted_without_sign_and_empty_values():
    params = {"b": "2", "a": "1", "sign": "xyz", "empty": "", "none": None, "c": "中文=&"}
    assert signing.content_to_sign(params) == "a=1&b=2&c=中文=&"
    assert signing.notification_content({**params, "sign_type": "RSA2"}) == "a=1&b=2&c=中文=&"
    # requests keep sign_type inside what is signed; notifications leave it out
    assert signing.content_to_sign({"a": "1", "sign_type": "RSA2"}) == "a=1&sign_type=RSA2"


def test_rsa2_signature_round_trip_and_wrong_key():
    key, other = rsa_key("alipay-app"), rsa_key("alipay-other")
    signature = signing.sign("a=1&b=2", key)
    assert signing.verify("a=1&b=2", signature, key.public_key())
    assert not signing.verify("a=1&b=3", signature, key.public_key())
    assert not signing.verify("a=1&b=2", signature, other.public_key())
    assert not signing.verify("a=1&b=2", "not base64!", key.public_key())


def test_answer_node_is_cut_from_the_raw_text():
    raw = '{"alipay_trade_query_response" : {"code":"10000", "msg":"Success","x":{"y":"}"}},"sign":"abc"}'
    node, text = signing.response_node(raw, "alipay_trade_query_response")
    assert node["code"] == "10000" and text == '{"code":"10000", "msg":"Success","x":{"y":"}"}}'
    assert signing.response_node(raw, "other_response") is None
    assert signing.response_node("not json", "alipay_trade_query_response") is None


# --- checkout and notification -> delivered ---------------------------------------------------

def test_page_pay_then_notification_delivers_the_keys(shop):
    started = start_payment(shop.shop, "alipay", shop.notify_url)
    action, payment, order = started["action"], started["payment"], started["order"]
    assert action.kind == "redirect" and action.url.startswith(shop.fake.gateway_url + "?")
    out_trade_no = f"{order.number}P{payment.pk}"
    assert payment.external_id == out_trade_no == action.external_id
    params = redirect_params(action.url)
    assert params["method"] == "alipay.trade.page.pay" and params["sign_type"] == "RSA2"
    assert params["app_id"] == shop.app_id and params["charset"] == "utf-8" and params["version"] == "1.0"
    assert params["notify_url"] == shop.notify_url and params["return_url"] == RETURN_URL
    biz = json.loads(params["biz_content"])
    assert biz["out_trade_no"] == out_trade_no and biz["total_amount"] == "20.00"
    assert biz["product_code"] == "FAST_INSTANT_TRADE_PAY" and biz["subject"] == f"Order {order.number}"

    page = requests.get(action.url, timeout=10)  # the buyer's browser at Alipay's cashier
    assert page.status_code == 200 and "¥20.00" in page.text
    assert provider_for("alipay").fetch_status(payment).status == "pending"

    answer = shop.bridge.call(lambda: shop.fake.pay(out_trade_no))
    assert answer.status_code == 200 and answer.text == "success"  # exactly, or Alipay sends it again
    assert_delivered(started)
    event = WebhookEvent.objects.get(provider="alipay")
    assert event.result == "paid" and event.event_id == f"{shop.fake.trades[out_trade_no]['trade_no']}:paid"


def test_phone_checkout_uses_wap_pay(shop):
    reconfigure(shop, checkout="wap")
    started = start_payment(shop.shop, "alipay", shop.notify_url)
    params = redirect_params(started["action"].url)
    biz = json.loads(params["biz_content"])
    assert params["method"] == "alipay.trade.wap.pay"
    assert biz["product_code"] == "QUICK_WAP_WAY" and biz["quit_url"] == RETURN_URL
    assert requests.get(started["action"].url, timeout=10).status_code == 200
    shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id))
    assert_delivered(started)


def test_qr_code_checkout_with_precreate(shop):
    reconfigure(shop, checkout="qr")
    started = start_payment(shop.shop, "alipay", shop.notify_url)
    action = started["action"]
    assert action.kind == "qr" and action.qr_text.startswith("https://qr.alipay.com/") and action.url == action.qr_text
    (call,) = shop.fake.received("POST", r"/gateway\.do")
    form = call.form()
    assert form["method"] == "alipay.trade.precreate" and form["notify_url"] == shop.notify_url
    assert "sign" in form and call.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    out_trade_no = shop.fake.scan(action.qr_text)
    assert out_trade_no == started["payment"].external_id
    assert shop.bridge.call(lambda: shop.fake.pay(out_trade_no)).text == "success"
    assert_delivered(started)


def test_lost_notification_is_recovered_by_the_query(shop):
    started = start_payment(shop.shop, "alipay", shop.notify_url)
    requests.get(started["action"].url, timeout=10)
    payment = started["payment"]
    shop.fake.pay(payment.external_id, notify=False)
    status = provider_for("alipay").fetch_status(payment)
    assert (status.status, status.amount, status.currency) == ("succeeded", 2000, "CNY")
    (query,) = [r for r in shop.fake.received("POST", r"/gateway\.do") if r.form()["method"] == "alipay.trade.query"]
    assert json.loads(query.form()["biz_content"]) == {"out_trade_no": payment.external_id}
    Payment.objects.filter(pk=payment.pk).update(created_at=payment.created_at - timedelta(minutes=10))
    assert payments_poll_pending() == 1
    assert_delivered(started)


def test_query_of_a_trade_alipay_never_saw_is_pending(shop):
    started = start_payment(shop.shop, "alipay", shop.notify_url)  # the buyer never opened the cashier
    assert provider_for("alipay").fetch_status(started["payment"]).status == "pending"


# --- refunds -----------------------------------------------------------------------------------

def paid(shop):
    started = start_payment(shop.shop, "alipay", shop.notify_url)
    requests.get(started["action"].url, timeout=10)
    shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id))
    return started


def test_partial_then_full_refund_through_alipay(shop):
    started = paid(shop)
    order, payment = started["order"], started["payment"]
    order_refund(order=order, amount=500, reason="One key did not work", actor="staff@alpha.example")
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "succeeded" and refund.external_id == "RF0T500"
    trade = shop.fake.trades[payment.external_id]
    assert trade["refunded"] == 500 and shop.fake.refunds[(payment.external_id, "RF0T500")]["amount"] == 500
    shop.bridge.pump(1)  # Alipay's refund notification: matched to our refund, not counted twice
    assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_confirmed"
    payment.refresh_from_db()
    assert payment.refunded_amount == 500

    order_refund(order=order, amount=1500, reason="Changed their mind", actor="staff@alpha.example")
    shop.bridge.pump(1)
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and payment.refunded_amount == 2000
    assert trade["status"] == "TRADE_CLOSED" and trade["refunded"] == 2000
    shop.fake.settle()
    assert [d["text"] for d in shop.fake.deliveries] == ["success"] * 3


def test_a_retried_refund_step_moves_money_once(shop):
    started = paid(shop)
    provider = provider_for("alipay")
    first = provider.refund(started["payment"], 700)
    again = provider.refund(started["payment"], 700)  # e.g. after a timeout, before we recorded it
    assert first.succeeded and again.succeeded and first.external_id == again.external_id
    assert shop.fake.trades[started["payment"].external_id]["refunded"] == 700


def test_refund_beyond_the_payment_is_refused_by_alipay(shop):
    started = paid(shop)
    with pytest.raises(PaymentError, match="退款金额超限"):
        provider_for("alipay").refund(started["payment"], 2001)


def test_refund_made_in_the_alipay_console_is_recorded(shop):
    started = paid(shop)
    shop.fake.refund_outside(started["payment"].external_id, 800)
    shop.bridge.pump(1)
    order = started["order"]
    order.refresh_from_db()
    event = WebhookEvent.objects.get(kind="refund.succeeded")
    assert event.result == "refund_recorded" and order.refunded_amount == 800


# --- requests Alipay refuses ---------------------------------------------------------------------

def test_request_signed_with_the_wrong_key_is_refused_by_alipay(shop):
    reconfigure(shop, checkout="qr", key=rsa_key("alipay-other"))
    with pytest.raises(PaymentMisconfigured, match="isv.invalid-signature"):
        start_payment(shop.shop, "alipay", shop.notify_url)
    assert shop.fake.trades == {}
    # and the browser checkout: Alipay's cashier refuses the signed redirect
    reconfigure(shop, checkout="page", key=rsa_key("alipay-other"))
    started = start_payment(shop.shop, "alipay", shop.notify_url)
    page = requests.get(started["action"].url, timeout=10)
    assert page.status_code == 400 and "invalid-signature" in page.text and shop.fake.trades == {}


def test_test_connection_proves_the_keys(shop):
    assert "verified" in provider_for("alipay").test_connection()
    reconfigure(shop, key=rsa_key("alipay-other"))
    with pytest.raises(PaymentMisconfigured):
        provider_for("alipay").test_connection()


def test_answer_signed_by_someone_else_is_not_believed(shop, alipay):
    """The shop pasted a wrong Alipay public key: answers do not verify, nothing is trusted."""
    reconfigure(shop, checkout="qr", alipay_public_key=signing.public_key_text(rsa_key("alipay-other").public_key()))
    with pytest.raises(PaymentMisconfigured, match="did not verify"):
        start_payment(shop.shop, "alipay", shop.notify_url)


# --- notifications we refuse ----------------------------------------------------------------------

@pytest.fixture
def pending(shop):
    started = start_payment(shop.shop, "alipay", shop.notify_url)
    requests.get(started["action"].url, timeout=10)
    started["out_trade_no"] = started["payment"].external_id
    with shop.fake.lock:
        shop.fake.trades[started["out_trade_no"]]["status"] = "TRADE_SUCCESS"  # paid at Alipay
    return started


def genuine(shop, pending, **overrides):
    return shop.fake.notification_params(pending["out_trade_no"], **overrides)


def test_a_genuine_notification_is_accepted(shop, pending):
    response = post_notification(shop, genuine(shop, pending))
    assert response.status_code == 200 and response.content == b"success"
    assert_delivered(pending)


@pytest.mark.parametrize("case", ["forged", "tampered_amount", "tampered_order", "reordered_values", "unsigned",
                                  "rsa1", "stale", "future", "other_app", "other_seller", "repeated_field",
                                  "bad_amount", "json_body"])
def test_bad_notifications_are_refused_and_change_nothing(shop, pending, case, caplog):
    good = genuine(shop, pending)
    if case == "forged":  # signed, but not by Alipay
        params = shop.fake.sign_notification(good, key=rsa_key("alipay-other"))
    elif case == "tampered_amount":
        params = {**good, "total_amount": "0.01"}
    elif case == "tampered_order":
        other = start_payment(shop.shop, "alipay", shop.notify_url, keys=2, quantity=1)
        params = {**good, "out_trade_no": other["payment"].external_id}
    elif case == "reordered_values":  # the same values moved to other fields
        params = {**good, "trade_no": good["out_trade_no"], "out_trade_no": good["trade_no"]}
    elif case == "unsigned":
        params = {k: v for k, v in good.items() if k != "sign"}
    elif case == "rsa1":
        params = {**good, "sign_type": "RSA"}
    elif case == "stale":  # a genuine notification from three days ago, replayed
        params = genuine(shop, pending, notify_time=beijing_now(-timedelta(days=3)))
    elif case == "future":
        params = genuine(shop, pending, notify_time=beijing_now(timedelta(hours=1)))
    elif case == "other_app":  # genuine, for another merchant's application
        params = genuine(shop, pending, app_id="2021" + digits(12))
    elif case == "other_seller":
        reconfigure(shop, seller_id="2088" + digits(12))
        params = good
    elif case == "repeated_field":
        body = "&".join(f"{k}={requests.utils.quote(v, safe='')}" for k, v in good.items()) + "&total_amount=0.01"
        response = shop.client.post(HOOK, data=body, content_type="application/x-www-form-urlencoded")
    if case == "bad_amount":
        params = genuine(shop, pending, total_amount="20.001")
    if case == "json_body":
        response = shop.client.post(HOOK, data=json.dumps(good), content_type="application/json")
    elif case != "repeated_field":
        with caplog.at_level(logging.WARNING, logger="platform_core.payments.views"):
            response = post_notification(shop, params)
    assert response.status_code == 400 and response.content != b"success", response.content
    assert_untouched(pending)
    if case not in ("repeated_field", "json_body"):
        assert any("payment webhook rejected" in r.getMessage() and "provider=alipay" in r.getMessage()
                   for r in caplog.records)


def test_a_replayed_notification_changes_nothing_more(shop, pending):
    params = genuine(shop, pending)
    assert post_notification(shop, params).content == b"success"
    again = post_notification(shop, params)  # Alipay re-sends, or someone replays it
    assert again.status_code == 200 and again.content == b"success"
    assert WebhookEvent.objects.filter(provider="alipay").count() == 1
    assert pending["order"].events.filter(kind="order.paid").count() == 1
    # a later TRADE_FINISHED for the same trade is the same payment, not a second one
    assert post_notification(shop, genuine(shop, pending, trade_status="TRADE_FINISHED")).content == b"success"
    assert WebhookEvent.objects.filter(provider="alipay").count() == 1
    assert_delivered(pending)


def test_a_refund_notification_before_the_payment_one_is_sent_again_later(shop, pending):
    """Alipay does not keep notifications in order: a refund made at Alipay may be told first."""
    refund_no = shop.fake.refund_outside(pending["out_trade_no"], 500)
    shop.bridge.pump(1)
    shop.fake.settle()
    early = shop.fake.deliveries[-1]
    assert early["status"] == 409 and early["text"] != "success"  # Alipay sends it again later
    assert_untouched(pending)
    assert post_notification(shop, genuine(shop, pending)).content == b"success"
    again = post_notification(shop, early["params"])
    assert again.content == b"success"
    event = WebhookEvent.objects.get(kind="refund.succeeded")
    assert event.result == "refund_recorded" and event.event_id.endswith(f":refund:{refund_no}")
    pending["order"].refresh_from_db()
    assert pending["order"].refunded_amount == 500


def test_genuine_notification_with_another_amount_is_kept_out(shop, pending, caplog):
    with caplog.at_level(logging.ERROR):
        response = post_notification(shop, genuine(shop, pending, total_amount="19.99"))
    assert response.content == b"success"  # recorded; Alipay must not send it forever
    assert WebhookEvent.objects.get().result == "amount_mismatch"
    assert_untouched(pending, events=1)


def test_unpaid_states_are_acknowledged_and_ignored(shop, pending):
    response = post_notification(shop, genuine(shop, pending, trade_status="WAIT_BUYER_PAY"))
    assert response.content == b"success"
    assert_untouched(pending)


def test_closed_trade_marks_the_payment_failed(shop, pending):
    assert post_notification(shop, genuine(shop, pending, trade_status="TRADE_CLOSED")).content == b"success"
    payment = pending["payment"]
    payment.refresh_from_db()
    assert payment.status == "failed"


def test_another_shop_cannot_use_this_shops_notification(shop, pending, bravo):
    """bravo has no Alipay: 404. Enabled with its own app, alpha's notification is refused."""
    bravo_client = Client(HTTP_HOST=host_of(bravo))
    assert post_notification(shop, genuine(shop, pending), bravo_client).status_code == 404
    with tenant_context(bravo):
        plugin_configure(shop=bravo, slug="alipay", data=settings_for(shop.fake, "2021" + digits(12)), enable=True)
        assert post_notification(shop, genuine(shop, pending), bravo_client).status_code == 400
    with tenant_context(shop.shop):  # the requests to bravo's host left the connection on bravo
        assert_untouched(pending)


# --- settings -------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("app_id", "12345", "16-digit"),
    ("app_private_key", "not a key", "neither PEM nor base64"),
    ("app_private_key", "MIIBOgIBAAJBAKxx", "could not be read"),
    ("alipay_public_key", "", "required"),
    ("alipay_public_key", "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----", "private key"),
    ("seller_id", "1234567890123456", "2088"),
    ("checkout", "bank", "valid choice"),
    ("environment", "staging", "valid choice"),
])
def test_settings_refuse_wrong_credentials_with_a_clear_message(alpha, alipay, field, value, message):
    data = settings_for(alipay, "2021" + digits(12))
    data[field] = value
    with tenant_context(alpha), pytest.raises(PluginError) as error:
        plugin_configure(shop=alpha, slug="alipay", data=data, enable=True)
    assert message in " ".join(error.value.errors[field])


def test_settings_refuse_the_apps_own_public_key_and_short_keys(alpha, alipay):
    from cryptography.hazmat.primitives.asymmetric import rsa

    data = settings_for(alipay, "2021" + digits(12))
    data["alipay_public_key"] = signing.public_key_text(rsa_key("alipay-app").public_key())
    with tenant_context(alpha), pytest.raises(PluginError) as error:
        plugin_configure(shop=alpha, slug="alipay", data=data, enable=True)
    assert "your application's own public key" in " ".join(error.value.errors["alipay_public_key"])
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    data = settings_for(alipay, "2021" + digits(12), key=short)
    with tenant_context(alpha), pytest.raises(PluginError) as error:
        plugin_configure(shop=alpha, slug="alipay", data=data, enable=True)
    assert "at least 2048" in " ".join(error.value.errors["app_private_key"])


def test_private_key_is_stored_encrypted_and_pem_is_accepted(alpha, alipay, settings):
    from cryptography.hazmat.primitives import serialization

    key = rsa_key("alipay-app")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    data = {**settings_for(alipay, "2021" + digits(12)), "app_private_key": pem, "environment": "production"}
    settings.KAMENG_ALIPAY_API_BASE = ""
    with tenant_context(alpha):
        config = plugin_configure(shop=alpha, slug="alipay", data=data, enable=True)
        stored = json.dumps(config.settings) + json.dumps(config.secrets)
        assert pem not in stored and signing.private_key_text(key) not in stored
        assert "app_private_key" not in config.settings
        provider = provider_for("alipay")
        assert provider.secret("app_private_key") == pem.strip() and provider.base_url == PRODUCTION_GATEWAY
        # saving again without the key keeps the stored one; the sandbox has its own gateway
        plugin_configure(shop=alpha, slug="alipay", data={**data, "app_private_key": "", "environment": "sandbox"})
        provider = provider_for("alipay")
        assert provider.secret("app_private_key") == pem.strip() and provider.base_url == SANDBOX_GATEWAY


def test_non_cny_orders_cannot_use_alipay(shop):
    from tests.payments.conftest import make_stock, place_order

    sku, _ = make_stock(shop.shop)
    order = place_order(sku)
    Order.objects.filter(pk=order.pk).update(currency="USD")
    order.refresh_from_db()
    assert not provider_for("alipay").is_allowed(order)


# --- secrets stay secret --------------------------------------------------------------------------

def test_no_secret_in_logs_or_answers_during_a_full_flow(shop, caplog):
    secret_texts = [signing.private_key_text(rsa_key("alipay-app"))]
    with caplog.at_level(logging.DEBUG):
        started = start_payment(shop.shop, "alipay", shop.notify_url)
        requests.get(started["action"].url, timeout=10)
        shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id))
        order_refund(order=started["order"], amount=300, reason="test", actor="staff@alpha.example")
        shop.bridge.pump(1)
        post_notification(shop, shop.fake.sign_notification(genuine(shop, {"out_trade_no":
                                                                            started["payment"].external_id}),
                                                            key=rsa_key("alipay-other")))
    assert_delivered(started)
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    answers = " ".join(answer.body.decode(errors="replace") for _, answer in shop.bridge.log)
    for secret in secret_texts:
        for chunk in (secret[:40], secret[100:140], secret[-40:]):
            assert chunk not in logged and chunk not in answers
    assert any(r.name == "kameng.payments.alipay" for r in caplog.records)  # the calls were logged, quietly


def test_buyer_checks_out_on_the_storefront_pays_at_alipay_and_sees_the_keys(shop, shop_client):
    from django.db import connection

    from tests.payments.conftest import make_stock
    from tests.storefront.conftest import token_of

    sku, plaintexts = make_stock(shop.shop, keys=3, price=1000)
    connection.set_schema_to_public()
    browser = shop_client(shop.shop)
    page = browser.get(f"/p/{sku.product_id}/")
    response = browser.post(f"/p/{sku.product_id}/", {
        "token": token_of(page), "sku": sku.pk, "quantity": 2, "contact": "buyer@example.com",
        "query_password": "s3cret-pw", "payment": "alipay"})
    assert response.status_code == 302 and response["Location"].startswith(shop.fake.gateway_url + "?")
    params = redirect_params(response["Location"])
    assert params["notify_url"] == f"http://{host_of(shop.shop)}{HOOK}"  # the shop's own address
    return_url = params["return_url"]
    assert requests.get(response["Location"], timeout=10).status_code == 200  # Alipay's cashier
    (out_trade_no,) = shop.fake.trades
    assert shop.bridge.call(lambda: shop.fake.pay(out_trade_no)).text == "success"
    html = browser.get(return_url).content.decode()  # Alipay sends the buyer back
    assert len([key for key in plaintexts if key in html]) == 2


def test_a_timeout_is_retried_with_the_same_trade_and_refund_numbers(shop, settings):
    """Alipay answers late: the retry names the same out_trade_no / out_request_no, so the
    buyer gets one trade and the refund is paid once."""
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (1.0, 0.5)
    reconfigure(shop, checkout="qr")
    shop.fake.stall("POST", r"/gateway\.do", 1.0)
    started = start_payment(shop.shop, "alipay", shop.notify_url)
    calls = shop.fake.received("POST", r"/gateway\.do")
    assert len(calls) == 2 and len(shop.fake.trades) == 1
    assert json.loads(calls[0].form()["biz_content"]) == json.loads(calls[1].form()["biz_content"])
    shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id))
    shop.fake.stall("POST", r"/gateway\.do", 1.0)
    order_refund(order=started["order"], amount=600, reason="late answer", actor="staff@alpha.example")
    assert shop.fake.trades[started["payment"].external_id]["refunded"] == 600
    assert Refund.objects.get().status == "succeeded"
