"""EPay (易支付) end to end against a fake EPay site over real HTTP: submit/mapi checkout,
notify -> order query -> order delivered, refunds; a notify is only a trigger (a signed
notify the query does not confirm changes nothing); bad notifies refused; settings;
the merchant key never in logs, although the protocol puts it in a query URL."""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
import string
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from django.test import Client
from django_tenants.utils import tenant_context

from platform_core.orders.models import Order
from platform_core.orders.services import order_refund
from platform_core.payments.models import Payment, Refund, WebhookEvent
from platform_core.payments.services import payments_poll_pending, provider_for
from plugins.payment import PaymentError
from plugins.payments.epay import signing
from plugins.services import PluginError, plugin_configure
from tests.conftest import host_of
from tests.fakegateways.epay import FakeEPay
from tests.payments.gateways.china_helpers import (
    RETURN_URL,
    assert_delivered,
    assert_untouched,
    digits,
    start_payment,
)

HOOK = "/hooks/payments/epay/"


def new_key() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


@pytest.fixture
def epay():
    with FakeEPay() as fake:
        yield fake
        assert fake.crashes == []


@pytest.fixture
def shop(alpha, epay, bridge):
    ns = SimpleNamespace(shop=alpha, pid="10" + digits(3), key=new_key(), fake=epay, bridge=bridge,
                         notify_url=bridge.url(HOOK), client=Client(HTTP_HOST=host_of(alpha)))
    epay.register_merchant(ns.pid, ns.key)
    with tenant_context(alpha):
        configure(ns)
        yield ns


def settings_for(ns, **changes) -> dict:
    return {"api_base": ns.fake.base_url, "pid": ns.pid, "key": ns.key, "pay_type": "alipay", "mode": "submit",
            **changes}


def configure(ns, **changes):
    return plugin_configure(shop=ns.shop, slug="epay", data=settings_for(ns, **changes), enable=True)


def notify(ns, params: dict, *, method: str = "GET", client=None):
    client = client or ns.client
    if method == "GET":
        return client.get(HOOK, data=params)
    return client.post(HOOK, data=params)


def queries(ns) -> list[dict]:
    return [{k: v[-1] for k, v in r.query.items()} for r in ns.fake.received("GET", r"/api\.php")
            if r.query.get("act") == ["order"]]


# --- signing rules ---------------------------------------------------------------------------------

def test_signature_is_md5_of_sorted_non_empty_parameters_plus_key():
    params = {"pid": "1001", "type": "alipay", "out_trade_no": "TEST123456", "notify_url": "http://example.com/notify",
              "return_url": "http://example.com/return", "name": "测试商品", "money": "0.01", "sitename": "",
              "sign": "ignored", "sign_type": "MD5"}
    content = ("money=0.01&name=测试商品&notify_url=http://example.com/notify&out_trade_no=TEST123456&pid=1001"
               "&return_url=http://example.com/return&type=alipay")
    assert signing.content_to_sign(params) == content
    key = "f872e1c662d41cf218b5dfa8328ae455"
    expected = hashlib.md5((content + key).encode()).hexdigest()
    assert signing.sign(params, key) == expected
    assert signing.verify({**params, "sign": expected}, key) and signing.verify({**params, "sign": expected.upper()}, key)
    assert not signing.verify({**params, "sign": expected}, key + "x")
    assert not signing.verify({**params, "sign": expected, "money": "0.02"}, key)


# --- checkout, notify -> query -> delivered -------------------------------------------------------------

def test_submit_redirect_then_notify_confirmed_by_query_delivers(shop):
    started = start_payment(shop.shop, "epay", shop.notify_url)
    action, payment, order = started["action"], started["payment"], started["order"]
    assert action.kind == "redirect" and action.url.startswith(f"{shop.fake.base_url}/submit.php?")
    params = dict(parse_qsl(urlsplit(action.url).query))
    assert params["pid"] == shop.pid and params["type"] == "alipay" and params["money"] == "20.00"
    assert params["out_trade_no"] == payment.external_id == f"{order.number}P{payment.pk}"
    assert params["notify_url"] == shop.notify_url and params["return_url"] == RETURN_URL
    assert params["sign_type"] == "MD5" and signing.verify(params, shop.key)
    assert shop.key not in action.url

    page = requests.get(action.url, timeout=10)
    assert page.status_code == 200 and "¥20.00" in page.text
    answer = shop.bridge.call(lambda: shop.fake.pay(payment.external_id))
    assert answer.status_code == 200 and answer.text == "success"
    assert_delivered(started)
    (query,) = queries(shop)  # confirmed with the site before anything was credited
    assert query == {"act": "order", "pid": shop.pid, "key": shop.key, "out_trade_no": payment.external_id}
    event = WebhookEvent.objects.get(provider="epay")
    assert event.result == "paid" and event.payload["query"]["status"] == 1


@pytest.mark.parametrize("pay_type, kind", [("alipay", "redirect"), ("wxpay", "qr")])
def test_mapi_checkout_answers_a_link_or_a_code(shop, pay_type, kind):
    configure(shop, mode="mapi", pay_type=pay_type)
    started = start_payment(shop.shop, "epay", shop.notify_url)
    action = started["action"]
    assert action.kind == kind
    assert (action.url if kind == "redirect" else action.qr_text).startswith(
        f"{shop.fake.base_url}/pay/" if kind == "redirect" else "weixin://")
    (call,) = shop.fake.received("POST", r"/mapi\.php")
    form = call.form()
    assert form["type"] == pay_type and signing.verify(form, shop.key) and "key" not in form
    shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id))
    assert_delivered(started)


def test_notify_by_post_is_taken_too(shop):
    started = start_payment(shop.shop, "epay", shop.notify_url)
    requests.get(started["action"].url, timeout=10)
    shop.fake.pay(started["payment"].external_id, notify=False)
    response = notify(shop, shop.fake.notify_params(started["payment"].external_id), method="POST")
    assert response.content == b"success"
    assert_delivered(started)


def test_lost_notify_is_recovered_by_the_query(shop):
    started = start_payment(shop.shop, "epay", shop.notify_url)
    requests.get(started["action"].url, timeout=10)
    payment = started["payment"]
    provider = provider_for("epay")
    assert provider.fetch_status(payment).status == "pending"
    shop.fake.pay(payment.external_id, notify=False)
    status = provider.fetch_status(payment)
    assert (status.status, status.amount, status.currency) == ("succeeded", 2000, "CNY")
    Payment.objects.filter(pk=payment.pk).update(created_at=payment.created_at - timedelta(minutes=10))
    assert payments_poll_pending() == 1
    assert_delivered(started)


# --- a notify is only a trigger ---------------------------------------------------------------------------

@pytest.fixture
def opened(shop):
    """An order the EPay site knows, not paid there."""
    started = start_payment(shop.shop, "epay", shop.notify_url)
    requests.get(started["action"].url, timeout=10)
    started["out_trade_no"] = started["payment"].external_id
    return started


def test_correctly_signed_notify_for_an_unpaid_order_changes_nothing(shop, opened, caplog):
    """Whoever knows the key (a leak, a former employee) can sign a notify; the site's own
    record says unpaid, so nothing is credited."""
    params = shop.fake.notify_params(opened["out_trade_no"])
    assert signing.verify(params, shop.key)
    with caplog.at_level(logging.WARNING):
        response = notify(shop, params)
    assert response.status_code == 200 and response.content == b"success"
    assert_untouched(opened)
    assert len(queries(shop)) == 1
    assert any("not confirmed by the order query" in r.getMessage() for r in caplog.records)


def test_notify_for_an_order_the_site_does_not_know_changes_nothing(shop, opened):
    shop.fake.orders.clear()
    params = signing.sign_params({"pid": shop.pid, "trade_no": "2026" + digits(10), "out_trade_no":
                                  opened["out_trade_no"], "type": "alipay", "name": "x", "money": "20.00",
                                  "trade_status": "TRADE_SUCCESS"}, shop.key)
    assert notify(shop, params).content == b"success"
    assert_untouched(opened)


def test_amount_is_taken_from_the_query_not_the_notify(shop, opened):
    with shop.fake.lock:  # the site says 0.01 was paid; the notify claims 20.00
        shop.fake.orders[opened["out_trade_no"]].update(status=1, money="0.01")
    assert notify(shop, shop.fake.notify_params(opened["out_trade_no"], money="20.00")).content == b"success"
    assert WebhookEvent.objects.get().result == "amount_mismatch"
    assert_untouched(opened, events=1)


def test_site_unreachable_during_the_notify_answers_503_and_changes_nothing(shop, opened):
    with shop.fake.lock:
        shop.fake.orders[opened["out_trade_no"]]["status"] = 1
    params = shop.fake.notify_params(opened["out_trade_no"])
    shop.fake.fail("GET", r"/api\.php", 503, times=5)
    response = notify(shop, params)
    assert response.status_code == 503 and response.content != b"success"  # the site sends it again
    assert_untouched(opened)
    assert notify(shop, params).content == b"success"  # the retry, once the site answers
    assert_delivered(opened)


@pytest.mark.parametrize("case", ["forged", "tampered_money", "tampered_order", "reordered_values", "unsigned",
                                  "sha256", "other_pid", "repeated_field", "empty"])
def test_bad_notifies_are_refused_without_asking_the_site(shop, opened, case, caplog):
    with shop.fake.lock:
        shop.fake.orders[opened["out_trade_no"]]["status"] = 1  # even a paid order is not credited by these
    good = shop.fake.notify_params(opened["out_trade_no"])
    query = None
    if case == "forged":
        params = shop.fake.notify_params(opened["out_trade_no"], key=new_key())
    elif case == "tampered_money":
        params = {**good, "money": "0.01"}
    elif case == "tampered_order":
        params = {**good, "out_trade_no": good["out_trade_no"] + "1"}
    elif case == "reordered_values":
        params = {**good, "trade_no": good["out_trade_no"], "out_trade_no": good["trade_no"]}
    elif case == "unsigned":
        params = {k: v for k, v in good.items() if k not in ("sign", "sign_type")}
    elif case == "sha256":
        params = {**good, "sign_type": "SHA256"}
    elif case == "other_pid":  # signed correctly by another merchant of the same site
        other_pid, other_key = "20" + digits(3), new_key()
        shop.fake.register_merchant(other_pid, other_key)
        params = signing.sign_params({**{k: v for k, v in good.items() if k not in ("sign", "sign_type")},
                                      "pid": other_pid}, other_key)
    elif case == "repeated_field":
        query = "&".join(f"{k}={requests.utils.quote(v, safe='')}" for k, v in good.items()) + "&money=0.01"
    else:
        params = {}
    with caplog.at_level(logging.WARNING, logger="platform_core.payments.views"):
        response = shop.client.get(f"{HOOK}?{query}") if query else notify(shop, params)
    assert response.status_code == 400 and response.content != b"success"
    assert queries(shop) == []
    assert_untouched(opened)
    assert any("provider=epay" in r.getMessage() for r in caplog.records)


def test_a_replayed_notify_changes_nothing_more(shop, opened):
    with shop.fake.lock:
        shop.fake.orders[opened["out_trade_no"]]["status"] = 1
    params = shop.fake.notify_params(opened["out_trade_no"])
    assert notify(shop, params).content == b"success"
    assert notify(shop, params).content == b"success"
    assert notify(shop, params, method="POST").content == b"success"
    assert WebhookEvent.objects.filter(provider="epay").count() == 1
    assert opened["order"].events.filter(kind="order.paid").count() == 1
    assert_delivered(opened)


def test_notify_for_another_shop_is_refused(shop, opened, bravo):
    with shop.fake.lock:
        shop.fake.orders[opened["out_trade_no"]]["status"] = 1
    params = shop.fake.notify_params(opened["out_trade_no"])
    bravo_client = Client(HTTP_HOST=host_of(bravo))
    assert notify(shop, params, client=bravo_client).status_code == 404
    with tenant_context(bravo):
        plugin_configure(shop=bravo, slug="epay", data=settings_for(shop, key=new_key()), enable=True)
        assert notify(shop, params, client=bravo_client).status_code == 400
    with tenant_context(shop.shop):
        assert_untouched(opened)


# --- requests the site refuses -------------------------------------------------------------------------

def test_request_signed_with_the_wrong_key_is_refused_by_the_site(shop):
    configure(shop, key=new_key())
    started = start_payment(shop.shop, "epay", shop.notify_url)
    page = requests.get(started["action"].url, timeout=10)
    assert page.status_code == 400 and "签名校验失败" in page.text and shop.fake.orders == {}
    configure(shop, key=new_key(), mode="mapi")
    with pytest.raises(PaymentError, match="签名校验失败"):
        start_payment(shop.shop, "epay", shop.notify_url)
    assert shop.fake.orders == {}


def test_test_connection(shop):
    assert "accepted" in provider_for("epay").test_connection()
    configure(shop, key=new_key())
    with pytest.raises(PaymentError, match="refused"):
        provider_for("epay").test_connection()


# --- refunds -------------------------------------------------------------------------------------------

def paid(shop):
    started = start_payment(shop.shop, "epay", shop.notify_url)
    requests.get(started["action"].url, timeout=10)
    shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id))
    return started


def test_refund_through_the_site(shop):
    started = paid(shop)
    order, payment = started["order"], started["payment"]
    order_refund(order=order, amount=500, reason="One key did not work", actor="staff@alpha.example")
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "succeeded"
    assert shop.fake.refunds == [{"out_trade_no": payment.external_id, "money": "5.00"}]
    order_refund(order=order, amount=1500, reason="rest", actor="staff@alpha.example")
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and shop.fake.orders[payment.external_id]["refunded"] == 2000
    (call, _) = shop.fake.received("POST", r"/api\.php")
    assert call.query == {"act": ["refund"]} and call.form()["key"] == shop.key  # the key in the body, not the URL


def test_refund_refused_by_the_site_changes_nothing(shop):
    started = paid(shop)
    shop.fake.orders[started["payment"].external_id]["refunded"] = 1900  # refunded in the EPay console
    with pytest.raises(Exception, match="退款金额超过可退金额"):
        order_refund(order=started["order"], amount=500, reason="x", actor="staff@alpha.example")
    assert not Refund.objects.exists()


def test_site_without_refund_api_says_what_to_do(shop):
    started = paid(shop)
    shop.fake.fail("POST", r"/api\.php", 404)
    with pytest.raises(PaymentError, match="refund in the EPay merchant console"):
        provider_for("epay").refund(started["payment"], 500)


# --- settings --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("pid", "abc", "up to 12 digits"),
    ("key", "short", "16 to 64 letters or digits"),
    ("key", "k" * 20 + "!" * 4, "16 to 64 letters or digits"),
    ("api_base", "", "required"),
    ("pay_type", "paypal", "valid choice"),
])
def test_settings_refuse_wrong_values_with_a_clear_message(shop, field, value, message):
    with pytest.raises(PluginError) as error:
        configure(shop, **{field: value})
    assert message in " ".join(error.value.errors[field])


@pytest.mark.parametrize("url, message", [
    ("http://pay.example.com", "https://"),
    ("https://127.0.0.1:8443", "private network"),
    ("https://10.1.2.3", "private network"),
    ("https://169.254.169.254", "private network"),
    ("https://localhost", "private network"),
    ("https://user:pw@pay.example.com", "without a user name"),
])
def test_production_refuses_epay_sites_inside_the_network(shop, settings, url, message):
    settings.PRODUCTION = True  # the shop chooses this address: it must not aim our server at internal hosts
    with pytest.raises(PluginError) as error:
        configure(shop, api_base=url)
    assert message in " ".join(error.value.errors["api_base"])
    # an address saved earlier is checked again when it is used
    with pytest.raises(PaymentError, match="will not call this EPay site"):
        provider_for("epay").fetch_status(Payment(external_id="1P1"))


def test_settings_take_the_site_address_with_or_without_submit_php_and_store_the_key_encrypted(shop):
    config = configure(shop, api_base=shop.fake.base_url + "/submit.php")
    assert config.settings["api_base"] == shop.fake.base_url
    assert shop.key not in json.dumps(config.settings) + json.dumps(config.secrets)
    assert provider_for("epay").secret("key") == shop.key


# --- the key stays secret ---------------------------------------------------------------------------------

def test_no_secret_in_logs_or_answers_during_a_full_flow(shop, caplog):
    # urllib3 is kept at WARNING (settings.LOGGING); an operator chasing a problem may turn it
    # up to DEBUG, and its request lines carry the order query's URL, key included
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="urllib3"):
        started = paid(shop)
        order_refund(order=started["order"], amount=300, reason="test", actor="staff@alpha.example")
        provider_for("epay").fetch_status(started["payment"])
        provider_for("epay").test_connection()
        notify(shop, shop.fake.notify_params(started["payment"].external_id, key=new_key()))
    assert_delivered(started)
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    answers = " ".join(answer.body.decode(errors="replace") for _, answer in shop.bridge.log)
    assert shop.key not in logged and shop.key not in answers
    # the request lines were logged (that is where the key would have been), masked
    assert "key=[redacted]" in logged and "act=order" in logged
