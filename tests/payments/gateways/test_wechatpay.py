"""WeChat Pay API v3 end to end against a fake API over real HTTP: Native and H5 checkout,
signed + encrypted notification -> order delivered, query, refunds; every kind of bad
notification refused without a state change; settings validation; no secret in logs."""
from __future__ import annotations

import json
import logging
import secrets
import string
import time
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from platform_core.orders.models import Order
from platform_core.orders.services import order_refund
from platform_core.payments.models import Payment, Refund, WebhookEvent
from platform_core.payments.services import payments_poll_pending, provider_for
from plugins.payment import PaymentError, PaymentMisconfigured
from plugins.payments.wechatpay import signing
from plugins.services import PluginError, plugin_configure
from tests.conftest import host_of
from tests.fakegateways.wechatpay import (
    FakeWeChatPay,
    certificate_pem,
    private_key_pem,
    rsa_key,
    self_signed_certificate,
)
from tests.payments.gateways.china_helpers import (
    RETURN_URL,
    assert_delivered,
    assert_untouched,
    digits,
    start_payment,
)

HOOK = "/hooks/payments/wechatpay/"


def new_apiv3_key() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


@pytest.fixture
def wechat(settings):
    with FakeWeChatPay() as fake:
        settings.KAMENG_WECHATPAY_API_BASE = fake.base_url  # the platform points WeChat Pay at the fake
        yield fake
        assert fake.crashes == []


@pytest.fixture
def shop(alpha, wechat, bridge):
    merchant = SimpleNamespace(mchid="19" + digits(8), appid="wx" + secrets.token_hex(8),
                               serial_no=secrets.token_hex(20).upper(), key=rsa_key("wechatpay-merchant"),
                               apiv3_key=new_apiv3_key())
    wechat.register_merchant(mchid=merchant.mchid, appid=merchant.appid, serial_no=merchant.serial_no,
                             public_key=merchant.key.public_key(), apiv3_key=merchant.apiv3_key)
    wechat.hosts[host_of(alpha)] = bridge.url("")
    with tenant_context(alpha):
        ns = SimpleNamespace(shop=alpha, merchant=merchant, fake=wechat, bridge=bridge, notify_url=bridge.url(HOOK),
                             client=Client(HTTP_HOST=host_of(alpha)))
        configure(ns)
        yield ns


def settings_for(ns, **changes) -> dict:
    m = ns.merchant
    return {"mchid": m.mchid, "appid": m.appid, "merchant_serial_no": m.serial_no,
            "merchant_private_key": private_key_pem(m.key), "apiv3_key": m.apiv3_key,
            "platform_certificates": ns.fake.platform_certificate_pem, "checkout": "native", **changes}


def configure(ns, **changes):
    return plugin_configure(shop=ns.shop, slug="wechatpay", data=settings_for(ns, **changes), enable=True)


def post_notification(ns, body: bytes, headers: dict, client=None):
    headers = {name: value for name, value in headers.items() if name.lower() != "content-type"}
    return (client or ns.client).post(HOOK, data=body, content_type="application/json", headers=headers)


# --- signing rules ------------------------------------------------------------------------------

def test_authorization_header_signs_method_url_time_nonce_and_body():
    key = rsa_key("wechatpay-merchant")
    header = signing.authorization(mchid="1900000109", serial_no="ABC123", private_key=key, method="POST",
                                   url="/v3/pay/transactions/native", body='{"a":1}', timestamp="1554208460",
                                   nonce="593BEC0C930BF1AFEB40B4A08C8FB242")
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
                             'signature="')
    assert header.endswith('",timestamp="1554208460",serial_no="ABC123"')
    fields = signing.parse_authorization(header)
    message = "POST\n/v3/pay/transactions/native\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{\"a\":1}\n"
    assert signing.verify(message, fields["signature"], key.public_key())
    assert not signing.verify(message.replace("POST", "GET"), fields["signature"], key.public_key())
    with pytest.raises(signing.SignatureError):
        signing.parse_authorization("Bearer abc")


@pytest.mark.parametrize("offset, ok", [(0, True), (300, True), (-300, True), (301, False), (-301, False)])
def test_platform_signatures_allow_five_minutes_either_way(offset, ok):
    key = rsa_key("wechatpay-platform")
    certificate = self_signed_certificate(key, "test")
    serial = signing.certificate_serial(certificate)
    now = 1_700_000_000
    ts = str(now + offset)
    signature = signing.sign(signing.response_message(ts, "nonce1", "{}"), key)
    check = dict(timestamp=ts, nonce="nonce1", signature=signature, serial=serial, body="{}",
                 keys={serial: certificate.public_key()}, now=now)
    if ok:
        signing.verify_signed_message(**check)
    else:
        with pytest.raises(signing.SignatureError, match="300 seconds"):
            signing.verify_signed_message(**check)
    with pytest.raises(signing.SignatureError, match="Wechatpay-Serial"):
        signing.verify_signed_message(**{**check, "timestamp": str(now), "serial": "ABCDEF"})


def test_resource_decrypts_only_with_the_right_key_and_associated_data():
    key = new_apiv3_key().encode()
    resource = signing.encrypt_resource(b'{"x":1}', key, associated_data="transaction", original_type="transaction")
    assert signing.decrypt_resource(resource, key) == b'{"x":1}'
    for broken in ({**resource, "associated_data": "refund"}, {**resource, "nonce": "000000000000"},
                   {**resource, "ciphertext": resource["ciphertext"][:-4] + "AAAA"},
                   {**resource, "algorithm": "AES_128_CBC"}):
        with pytest.raises(signing.SignatureError):
            signing.decrypt_resource(broken, key)
    with pytest.raises(signing.SignatureError):
        signing.decrypt_resource(resource, new_apiv3_key().encode())


# --- checkout and notification -> delivered ----------------------------------------------------

def test_native_qr_payment_then_notification_delivers_the_keys(shop):
    started = start_payment(shop.shop, "wechatpay", shop.notify_url)
    action, payment, order = started["action"], started["payment"], started["order"]
    assert action.kind == "qr" and action.qr_text.startswith("weixin://wxpay/bizpayurl?pr=")
    assert payment.external_id == f"{order.number}P{payment.pk}"
    (call,) = shop.fake.received("POST", r"/v3/pay/transactions/native")
    fields = signing.parse_authorization(call.headers["Authorization"])
    assert fields["mchid"] == shop.merchant.mchid and fields["serial_no"] == shop.merchant.serial_no
    body = call.json()
    assert body["amount"] == {"total": 2000, "currency": "CNY"}  # fen, an integer
    assert body["out_trade_no"] == payment.external_id and body["notify_url"] == shop.notify_url
    assert body["appid"] == shop.merchant.appid and body["mchid"] == shop.merchant.mchid
    assert body["time_expire"].endswith("+08:00")

    answer = shop.bridge.call(lambda: shop.fake.pay(payment.external_id))
    assert answer.status_code == 204
    assert_delivered(started)
    assert WebhookEvent.objects.get(provider="wechatpay").result == "paid"


def test_h5_checkout_sends_the_phone_to_wechat(shop):
    configure(shop, checkout="h5")
    from tests.payments.conftest import make_stock, place_order

    sku, plaintexts = make_stock(shop.shop)
    order = place_order(sku)
    Order.objects.filter(pk=order.pk).update(ip="203.0.113.7")
    order.refresh_from_db()
    from platform_core.payments.services import payment_start

    payment, action = payment_start(order=order, provider_slug="wechatpay", return_url=RETURN_URL,
                                    notify_url=shop.notify_url)
    assert action.kind == "redirect" and action.url.startswith("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?")
    assert unquote(action.url.split("&redirect_url=")[1]) == RETURN_URL
    (call,) = shop.fake.received("POST", r"/v3/pay/transactions/h5")
    assert call.json()["scene_info"] == {"payer_client_ip": "203.0.113.7", "h5_info": {"type": "Wap"}}
    payment.refresh_from_db()
    shop.bridge.call(lambda: shop.fake.pay(payment.external_id))
    assert_delivered({"order": order, "payment": payment, "sku": sku, "plaintexts": plaintexts})


def test_h5_without_the_buyers_ip_is_refused_plainly(shop):
    configure(shop, checkout="h5")
    with pytest.raises(PaymentError, match="IP address"):
        start_payment(shop.shop, "wechatpay", shop.notify_url)
    assert shop.fake.orders == {}


def test_asking_twice_for_the_same_order_gets_the_same_code(shop):
    started = start_payment(shop.shop, "wechatpay", shop.notify_url)
    provider = provider_for("wechatpay")
    again = provider.start(started["order"], started["payment"], return_url=RETURN_URL, notify_url=shop.notify_url)
    assert again.qr_text == started["action"].qr_text and len(shop.fake.orders) == 1


def test_lost_notification_is_recovered_by_the_query(shop):
    started = start_payment(shop.shop, "wechatpay", shop.notify_url)
    payment = started["payment"]
    provider = provider_for("wechatpay")
    assert provider.fetch_status(payment).status == "pending"  # NOTPAY
    shop.fake.pay(payment.external_id, notify=False)
    status = provider.fetch_status(payment)
    assert (status.status, status.amount, status.currency) == ("succeeded", 2000, "CNY")
    queries = shop.fake.received("GET", r"/v3/pay/transactions/out-trade-no/.+")
    assert queries[-1].query == {"mchid": [shop.merchant.mchid]}
    Payment.objects.filter(pk=payment.pk).update(created_at=payment.created_at - timedelta(minutes=10))
    assert payments_poll_pending() == 1
    assert_delivered(started)


def test_query_of_an_order_wechat_never_saw_is_pending(shop):
    started = start_payment(shop.shop, "wechatpay", shop.notify_url)
    shop.fake.orders.clear()
    assert provider_for("wechatpay").fetch_status(started["payment"]).status == "pending"


# --- refunds -------------------------------------------------------------------------------------

def paid(shop):
    started = start_payment(shop.shop, "wechatpay", shop.notify_url)
    shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id))
    return started


def test_refund_is_processing_then_confirmed_by_notification(shop):
    started = paid(shop)
    order, payment = started["order"], started["payment"]
    order_refund(order=order, amount=500, reason="One key did not work", actor="staff@alpha.example")
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "pending" and refund.external_id == f"{payment.external_id}R0T500"
    record = shop.fake.refunds[refund.external_id]
    assert record["request"]["amount"] == {"refund": 500, "total": 2000, "currency": "CNY"}
    # the refund notification goes to the shop's own address, which the test resolves to the bridge
    assert record["notify_url"].startswith(f"http://{host_of(shop.shop)}") and record["notify_url"].endswith(HOOK)
    shop.bridge.pump(1)
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_confirmed"
    payment.refresh_from_db()
    assert payment.refunded_amount == 500

    order_refund(order=order, amount=1500, reason="rest", actor="staff@alpha.example")
    shop.bridge.pump(1)
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and shop.fake.orders[payment.external_id]["refunded"] == 2000


def test_a_retried_refund_step_moves_money_once(shop):
    started = paid(shop)
    provider = provider_for("wechatpay")
    first = provider.refund(started["payment"], 700)
    again = provider.refund(started["payment"], 700)
    assert first.external_id == again.external_id and again.succeeded  # the second answer: already SUCCESS
    assert shop.fake.orders[started["payment"].external_id]["refunded"] == 700


def test_refund_beyond_what_is_left_is_refused(shop):
    started = paid(shop)
    with pytest.raises(PaymentError, match="NOT_ENOUGH"):
        provider_for("wechatpay").refund(started["payment"], 2001)


# --- requests WeChat refuses, answers we do not believe -----------------------------------------------

def test_request_signed_with_the_wrong_key_is_refused_by_wechat(shop):
    configure(shop, merchant_private_key=private_key_pem(rsa_key("wechatpay-other")))
    with pytest.raises(PaymentMisconfigured, match="credentials"):
        start_payment(shop.shop, "wechatpay", shop.notify_url)
    assert shop.fake.orders == {}
    (call,) = shop.fake.received("POST", r"/v3/pay/transactions/native")
    assert call.headers["Authorization"].startswith("WECHATPAY2-SHA256-RSA2048 ")


def test_answers_signed_by_an_unknown_certificate_are_not_believed(shop):
    other = certificate_pem(self_signed_certificate(rsa_key("wechatpay-other"), "someone else"))
    configure(shop, platform_certificates=other)
    with pytest.raises(PaymentMisconfigured, match="did not verify"):
        start_payment(shop.shop, "wechatpay", shop.notify_url)


def test_test_connection(shop):
    assert "verified" in provider_for("wechatpay").test_connection()
    (call,) = shop.fake.received("GET", r"/v3/pay/transactions/out-trade-no/.+")
    assert call.headers["Authorization"].startswith("WECHATPAY2-SHA256-RSA2048 ")
    configure(shop, merchant_serial_no="ABCDEF0123")
    with pytest.raises(PaymentMisconfigured):
        provider_for("wechatpay").test_connection()


# --- notifications we refuse -------------------------------------------------------------------------

@pytest.fixture
def pending(shop):
    started = start_payment(shop.shop, "wechatpay", shop.notify_url)
    out_trade_no = started["payment"].external_id
    with shop.fake.lock:
        shop.fake.orders[out_trade_no].update(state="SUCCESS", transaction_id="4200000000" + digits(18),
                                              success_time="2026-01-01T00:00:00+08:00")
    started["transaction"] = shop.fake.transaction(shop.fake.orders[out_trade_no])
    return started


def test_a_genuine_notification_is_accepted(shop, pending):
    body, headers = shop.fake.notification("TRANSACTION.SUCCESS", pending["transaction"])
    response = post_notification(shop, body, headers)
    assert response.status_code == 204
    assert_delivered(pending)


@pytest.mark.parametrize("case", ["forged", "unknown_serial", "stale", "future", "tampered_body", "reordered_message",
                                  "swapped_headers", "no_signature", "wrong_apiv3_key", "other_mchid", "other_appid",
                                  "not_success", "not_json", "amount_as_text", "bad_signature_type"])
def test_bad_notifications_are_refused_and_change_nothing(shop, pending, case, caplog):
    fake, transaction = shop.fake, pending["transaction"]
    body, headers = fake.notification("TRANSACTION.SUCCESS", transaction)
    if case == "forged":  # signed with a key that is not the platform's, naming its serial
        body, headers = fake.notification("TRANSACTION.SUCCESS", transaction, key=rsa_key("wechatpay-other"))
    elif case == "unknown_serial":
        body, headers = fake.notification("TRANSACTION.SUCCESS", transaction, serial="5157F09EFDC096DE15EBE81A47057A72")
    elif case == "stale":
        body, headers = fake.notification("TRANSACTION.SUCCESS", transaction, timestamp=int(time.time()) - 400)
    elif case == "future":
        body, headers = fake.notification("TRANSACTION.SUCCESS", transaction, timestamp=int(time.time()) + 400)
    elif case == "tampered_body":
        body = body.replace(b'"event_type":"TRANSACTION.SUCCESS"', b'"event_type":"TRANSACTION.SUCCESS" ')
    elif case == "reordered_message":  # a real platform signature, over the parts in another order
        ts, nonce = headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"]
        headers["Wechatpay-Signature"] = signing.sign(f"{nonce}\n{ts}\n{body.decode()}\n", fake.platform_key)
    elif case == "swapped_headers":
        headers["Wechatpay-Nonce"], headers["Wechatpay-Timestamp"] = headers["Wechatpay-Timestamp"], "x" + \
            headers["Wechatpay-Nonce"]
    elif case == "no_signature":
        headers.pop("Wechatpay-Signature")
    elif case == "wrong_apiv3_key":  # signed by the platform, but not encrypted for this merchant
        body, headers = fake.notification("TRANSACTION.SUCCESS", transaction, apiv3_key=new_apiv3_key().encode())
    elif case == "other_mchid":
        other = "19" + digits(8)
        fake.register_merchant(mchid=other, appid=shop.merchant.appid, serial_no="AB12CD34",
                               public_key=rsa_key("wechatpay-other").public_key(),
                               apiv3_key=shop.merchant.apiv3_key)
        body, headers = fake.notification("TRANSACTION.SUCCESS", {**transaction, "mchid": other})
    elif case == "other_appid":
        body, headers = fake.notification("TRANSACTION.SUCCESS", {**transaction, "appid": "wx" + "0" * 16})
    elif case == "not_success":
        body, headers = fake.notification("TRANSACTION.SUCCESS", {**transaction, "trade_state": "NOTPAY"})
    elif case == "not_json":
        body = b"\xff not json"
        headers = {**headers, **fake.signed_headers(body.decode(errors="replace"))}
    elif case == "amount_as_text":
        body, headers = fake.notification("TRANSACTION.SUCCESS",
                                          {**transaction, "amount": {"total": "2000", "currency": "CNY"}})
    elif case == "bad_signature_type":
        headers["Wechatpay-Signature-Type"] = "WECHATPAY2-SM2-WITH-SM3"
    with caplog.at_level(logging.WARNING, logger="platform_core.payments.views"):
        response = post_notification(shop, body, headers)
    assert response.status_code == 400, response.content
    assert_untouched(pending)
    assert any("payment webhook rejected" in r.getMessage() and "provider=wechatpay" in r.getMessage()
               for r in caplog.records)


def test_a_replayed_notification_changes_nothing_more(shop, pending):
    body, headers = shop.fake.notification("TRANSACTION.SUCCESS", pending["transaction"])
    assert post_notification(shop, body, headers).status_code == 204
    assert post_notification(shop, body, headers).status_code == 204  # WeChat re-sends the same id
    # the same payment told again under a new id is still one payment
    body2, headers2 = shop.fake.notification("TRANSACTION.SUCCESS", pending["transaction"])
    assert post_notification(shop, body2, headers2).status_code == 204
    assert WebhookEvent.objects.filter(provider="wechatpay", result="paid").count() == 1
    assert pending["order"].events.filter(kind="order.paid").count() == 1
    assert_delivered(pending)


def test_a_refund_notification_before_the_payment_one_is_sent_again_later(shop, pending):
    refund = {"mchid": shop.merchant.mchid, "out_trade_no": pending["payment"].external_id,
              "transaction_id": pending["transaction"]["transaction_id"], "out_refund_no": "CONSOLE123",
              "refund_id": "50000000001", "refund_status": "SUCCESS",
              "amount": {"total": 2000, "refund": 500, "payer_total": 2000, "payer_refund": 500}}
    body, headers = shop.fake.notification("REFUND.SUCCESS", refund)
    assert post_notification(shop, body, headers).status_code == 409  # WeChat sends it again later
    assert_untouched(pending)
    paid_body, paid_headers = shop.fake.notification("TRANSACTION.SUCCESS", pending["transaction"])
    assert post_notification(shop, paid_body, paid_headers).status_code == 204
    assert post_notification(shop, body, headers).status_code == 204
    assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_recorded"
    pending["order"].refresh_from_db()
    assert pending["order"].refunded_amount == 500


def test_genuine_notification_with_another_amount_is_kept_out(shop, pending):
    body, headers = shop.fake.notification("TRANSACTION.SUCCESS", {**pending["transaction"],
                                                                   "amount": {"total": 1, "currency": "CNY"}})
    assert post_notification(shop, body, headers).status_code == 204
    assert WebhookEvent.objects.get().result == "amount_mismatch"
    assert_untouched(pending, events=1)


def test_another_shop_cannot_decrypt_or_use_this_shops_notification(shop, pending, bravo):
    body, headers = shop.fake.notification("TRANSACTION.SUCCESS", pending["transaction"])
    bravo_client = Client(HTTP_HOST=host_of(bravo))
    assert post_notification(shop, body, headers, bravo_client).status_code == 404  # not enabled there
    with tenant_context(bravo):
        plugin_configure(shop=bravo, slug="wechatpay", data=settings_for(shop, apiv3_key=new_apiv3_key()),
                         enable=True)
        assert post_notification(shop, body, headers, bravo_client).status_code == 400
    with tenant_context(shop.shop):
        assert_untouched(pending)


# --- settings --------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("mchid", "19000001x9", "8 to 12 digits"),
    ("appid", "wx123", "starts with wx"),
    ("merchant_serial_no", "XYZ", "hex digits"),
    ("merchant_private_key", "abc", "apiclient_key.pem"),
    ("merchant_private_key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "could not be read"),
    ("apiv3_key", "a" * 31, "exactly 32"),
    ("apiv3_key", "a" * 33, "exactly 32"),
    ("apiv3_key", "a" * 30 + "é", "letters and digits"),  # 32 bytes, not 32 letters or digits
    ("platform_certificates", "hello", "BEGIN CERTIFICATE"),
    ("platform_public_key_id", "PUB_KEY_ID_0119", "no WeChat Pay public key is pasted"),
    ("platform_certificates", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "could not be read"),
    ("checkout", "jsapi", "valid choice"),
])
def test_settings_refuse_wrong_credentials_with_a_clear_message(shop, field, value, message):
    with pytest.raises(PluginError) as error:
        configure(shop, **{field: value})
    assert message in " ".join(error.value.errors[field])


def test_accounts_with_a_wechat_pay_public_key_instead_of_certificates(shop):
    """Newer merchant accounts get a "WeChat Pay public key" named PUB_KEY_ID_…"""
    with pytest.raises(PluginError) as error:  # the key without its ID
        configure(shop, platform_certificates=shop.fake.platform_public_key_pem)
    assert "public key ID" in " ".join(error.value.errors["platform_public_key_id"])
    key_id = shop.fake.use_public_key()
    configure(shop, platform_certificates=shop.fake.platform_public_key_pem, platform_public_key_id=key_id)
    assert "verified" in provider_for("wechatpay").test_connection()
    started = start_payment(shop.shop, "wechatpay", shop.notify_url)
    assert shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id)).status_code == 204
    assert_delivered(started)
    # the certificate serial means nothing to this shop any more
    body, headers = shop.fake.notification("TRANSACTION.SUCCESS", shop.fake.transaction(
        shop.fake.orders[started["payment"].external_id]), serial=shop.fake.platform_serial)
    assert post_notification(shop, body, headers).status_code == 400
    # during a move both may be pasted: either name is then trusted
    both = shop.fake.platform_certificate_pem + "\n" + shop.fake.platform_public_key_pem
    configure(shop, platform_certificates=both, platform_public_key_id=key_id)
    assert post_notification(shop, body, headers).status_code == 204


def test_settings_refuse_the_platform_serial_as_the_merchant_serial(shop):
    with pytest.raises(PluginError) as error:
        configure(shop, merchant_serial_no=shop.fake.platform_serial)
    assert "platform certificate's serial" in " ".join(error.value.errors["merchant_serial_no"])


def test_secrets_are_stored_encrypted(shop):
    from plugins.models import PluginConfig

    config = PluginConfig.objects.get(slug="wechatpay")
    stored = json.dumps(config.settings) + json.dumps(config.secrets)
    assert shop.merchant.apiv3_key not in stored and "PRIVATE KEY" not in stored
    assert set(config.secrets) == {"merchant_private_key", "apiv3_key"}
    assert provider_for("wechatpay").secret("apiv3_key") == shop.merchant.apiv3_key


# --- secrets stay secret -------------------------------------------------------------------------------

def test_no_secret_in_logs_or_answers_during_a_full_flow(shop, caplog):
    pem = private_key_pem(shop.merchant.key)
    key_body = "".join(pem.splitlines()[1:-1])
    with caplog.at_level(logging.DEBUG):
        started = paid(shop)
        order_refund(order=started["order"], amount=300, reason="test", actor="staff@alpha.example")
        shop.bridge.pump(1)
        body, headers = shop.fake.notification("TRANSACTION.SUCCESS", shop.fake.transaction(
            shop.fake.orders[started["payment"].external_id]), apiv3_key=new_apiv3_key().encode())
        post_notification(shop, body, headers)
        provider_for("wechatpay").test_connection()
    assert_delivered(started)
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    answers = " ".join(answer.body.decode(errors="replace") for _, answer in shop.bridge.log)
    for secret in (shop.merchant.apiv3_key, key_body[:40], key_body[500:540], key_body[-40:]):
        assert secret not in logged and secret not in answers
    assert any(r.name == "kameng.payments.wechatpay" for r in caplog.records)


def test_console_and_api_never_show_the_secrets(shop, shop_client, alice):
    client = shop_client(shop.shop, alice)  # the shop's owner
    key_body = "".join(private_key_pem(shop.merchant.key).splitlines()[1:-1])
    pages = [client.get("/manage/plugins/wechatpay/"), client.get("/api/v1/plugins/wechatpay/"),
             client.get("/api/v1/plugins/"), client.post("/manage/plugins/wechatpay/test/", follow=True)]
    assert [page.status_code for page in pages] == [200, 200, 200, 200]
    assert shop.merchant.mchid in pages[0].content.decode()  # the settings are there, the secrets are not
    assert "verified" in pages[3].content.decode()  # the test-connection button worked
    for page in pages:
        text = page.content.decode()
        assert shop.merchant.apiv3_key not in text and key_body[:40] not in text and key_body[-40:] not in text


def test_buyer_checks_out_on_the_storefront_scans_and_sees_the_keys(shop, shop_client):
    """The whole buyer path on the shop's own pages: the product page, the QR code on the
    order page, WeChat's notification to the shop's address, the keys on the order page."""
    from django.db import connection

    from tests.payments.conftest import make_stock
    from tests.storefront.conftest import token_of

    sku, plaintexts = make_stock(shop.shop, keys=3, price=1000)
    connection.set_schema_to_public()
    browser = shop_client(shop.shop)
    page = browser.get(f"/p/{sku.product_id}/")
    assert page.status_code == 200 and "WeChat Pay" in page.content.decode()
    response = browser.post(f"/p/{sku.product_id}/", {
        "token": token_of(page), "sku": sku.pk, "quantity": 2, "contact": "buyer@example.com",
        "query_password": "s3cret-pw", "payment": "wechatpay"})
    assert response.status_code == 302
    order_page = browser.get(response["Location"])
    html = order_page.content.decode()
    (out_trade_no,) = shop.fake.orders
    code_url = shop.fake.orders[out_trade_no]["answer"]["code_url"]
    assert 'data-testid="qr"' in html and code_url.replace("&", "&amp;") in html
    # the notify URL the storefront gave is the shop's own address
    assert shop.fake.orders[out_trade_no]["notify_url"] == f"http://{host_of(shop.shop)}{HOOK}"

    answer = shop.bridge.call(lambda: shop.fake.pay(out_trade_no))  # the buyer scans and pays
    assert answer.status_code == 204
    html = browser.get(response["Location"]).content.decode()
    shown = [key for key in plaintexts if key in html]
    assert len(shown) == 2 and 'data-testid="keys"' in html


def test_a_timeout_is_retried_with_the_same_order_and_refund_numbers(shop, settings):
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (1.0, 0.5)
    shop.fake.stall("POST", r"/v3/pay/transactions/native", 1.0)
    started = start_payment(shop.shop, "wechatpay", shop.notify_url)
    calls = shop.fake.received("POST", r"/v3/pay/transactions/native")
    assert len(calls) == 2 and calls[0].body == calls[1].body and len(shop.fake.orders) == 1
    shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id))
    shop.fake.stall("POST", r"/v3/refund/domestic/refunds", 1.0)
    order_refund(order=started["order"], amount=600, reason="late answer", actor="staff@alpha.example")
    assert len(shop.fake.received("POST", r"/v3/refund/domestic/refunds")) == 2
    assert shop.fake.orders[started["payment"].external_id]["refunded"] == 600 and len(shop.fake.refunds) == 1
