"""Several merchant accounts per payment gateway: priority, fail-over, and every later
step (webhooks, refunds, polls) going to the account that took the payment. Real
sandbox gateways over HTTP (a second one on its own port is the backup merchant) and
the fake Stripe for a real adapter."""
from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
import requests
from django.test import Client
from django_tenants.utils import tenant_context
from rest_framework.authtoken.models import Token

from platform_core.audit.models import AuditEvent
from platform_core.orders.models import Order
from platform_core.orders.services import order_delivered_items, order_refund
from platform_core.payments.models import Payment, Refund, WebhookEvent
from platform_core.payments.services import payment_start, payments_poll_pending
from plugins.accounts import plugin_account_save, plugin_accounts, plugin_accounts_reorder
from plugins.models import PluginAccount, PluginConfig
from plugins.payment import PaymentDeclined, PaymentError
from plugins.services import PluginError, plugin_configure
from sandbox_gateway import serve_in_thread, signature_header, webhook_secret_for
from tests.conftest import host_of
from tests.console.fixtures import carol  # noqa: F401 - a fixture
from tests.fakegateways.stripe import API_KEY as STRIPE_KEY
from tests.fakegateways.stripe import WEBHOOK_SECRET as STRIPE_WEBHOOK_SECRET
from tests.fakegateways.stripe import FakeStripe
from tests.payments.conftest import WEBHOOK_PATH, event_body, make_stock, new_api_key, place_order

RETURN_URL = "http://alpha.kameng.test/order/return/"
BACKUP_PATH = f"{WEBHOOK_PATH}backup/"


@pytest.fixture
def backup_gateway():
    """A second sandbox gateway: the backup merchant's."""
    server, base_url = serve_in_thread(webhook_timeout=3.0, retry_delays=(0.2, 0.5))
    server.base = base_url
    yield server
    server.stop()


@pytest.fixture
def dead_url():
    server, base = serve_in_thread()
    server.stop()  # nothing listens there any more
    return base


def configure(shop, *, main_url, main_key, backup_url=None, backup_key=None, **backup):
    plugin_configure(shop=shop, slug="sandbox", data={"gateway_url": main_url, "api_key": main_key}, enable=True)
    if backup_url:
        plugin_account_save(shop=shop, slug="sandbox", key="backup", label="Backup merchant", create=True,
                            data={"gateway_url": backup_url, "api_key": backup_key}, **backup)


def start(shop, bridge, *, slug="sandbox", hook=WEBHOOK_PATH):
    sku, plaintexts = make_stock(shop)
    order = place_order(sku)
    payment, action = payment_start(order=order, provider_slug=slug, return_url=RETURN_URL, notify_url=bridge.url(hook))
    payment.refresh_from_db()
    return order, payment, action, plaintexts


def click(url: str, button: str = "pay") -> requests.Response:
    return requests.post(f"{url}/{button}", allow_redirects=False, timeout=15)


def at_gateway(gateway, key, external_id) -> dict:
    return requests.get(f"{gateway.base}/v1/payments/{external_id}", headers={"Authorization": f"Bearer {key}"},
                        timeout=10).json()


def succeeded_body(payment, event_id="evt_accounts1") -> bytes:
    return event_body(event_id, "payment.succeeded", {
        "id": payment.external_id, "reference": str(payment.pk), "amount": payment.amount,
        "currency": payment.currency}).encode()


def post_hook(path, body: bytes, api_key: str, shop):
    header = signature_header(webhook_secret_for(api_key), int(time.time()), body)
    return Client(HTTP_HOST=host_of(shop)).post(path, data=body, content_type="application/json",
                                                 headers={"Sandbox-Signature": header})


# --- fail-over ---------------------------------------------------------------------------

def test_main_gateway_down_the_backup_takes_the_payment_and_the_order_is_delivered(alpha, backup_gateway, dead_url,
                                                                                   bridge):
    main_key, backup_key = new_api_key(), new_api_key()
    with tenant_context(alpha):
        configure(alpha, main_url=dead_url, main_key=main_key, backup_url=backup_gateway.base, backup_key=backup_key)
        order, payment, action, plaintexts = start(alpha, bridge)
        assert action.kind == "redirect" and action.url.startswith(f"{backup_gateway.base}/pay/")
        assert payment.account == "backup" and payment.status == "pending"
        assert payment.data["attempts"] == [{"account": "main", "error": "retryable"}]
        # the backup merchant holds the payment, under the backup's own webhook address
        assert at_gateway(backup_gateway, backup_key, payment.external_id)["reference"] == str(payment.pk)

        response = bridge.call(lambda: click(action.url))
        assert response.status_code == 303
        (forwarded, answer), = bridge.log
        assert forwarded.path == BACKUP_PATH and answer.status == 200
        order.refresh_from_db()
        payment.refresh_from_db()
        assert order.status == Order.Status.DELIVERED and payment.status == "succeeded"
        assert {item.secret for item in order_delivered_items(order)} <= set(plaintexts)
        assert WebhookEvent.objects.get().account == "backup"


def test_a_payment_stays_with_the_main_account_while_it_works(sandbox_shop, gateway, api_key, backup_gateway,
                                                             bridge):
    plugin_account_save(shop=sandbox_shop, slug="sandbox", key="backup", label="Backup", create=True,
                        data={"gateway_url": backup_gateway.base, "api_key": new_api_key()})
    order, payment, action, _ = start(sandbox_shop, bridge)
    assert payment.account == "main" and "attempts" not in payment.data
    assert action.url.startswith(f"{gateway.base}/pay/")
    bridge.call(lambda: click(action.url))
    (forwarded, answer), = bridge.log
    assert forwarded.path == WEBHOOK_PATH and answer.status == 200  # the main account's address, as before
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


def test_a_disabled_account_is_skipped_and_its_gateway_never_asked(alpha, gateway, backup_gateway, bridge):
    main_key, backup_key = new_api_key(), new_api_key()
    with tenant_context(alpha):
        configure(alpha, main_url=gateway.base, main_key=main_key, backup_url=backup_gateway.base,
                  backup_key=backup_key)
        plugin_account_save(shop=alpha, slug="sandbox", key="main", label="Main merchant", enabled=False)
        order, payment, action, _ = start(alpha, bridge)
        assert payment.account == "backup" and "attempts" not in payment.data
        assert action.url.startswith(f"{backup_gateway.base}/pay/")
        # the main merchant never heard of this payment
        assert at_gateway(gateway, main_key, payment.external_id).get("error")

        # every account disabled: a plain error, no payment row at all
        plugin_account_save(shop=alpha, slug="sandbox", key="backup", label="Backup", enabled=False)
        other = place_order(make_stock(alpha)[0])
        with pytest.raises(PaymentError, match="no enabled merchant account"):
            payment_start(order=other, provider_slug="sandbox", return_url=RETURN_URL,
                          notify_url=bridge.url(WEBHOOK_PATH))
        assert not Payment.objects.filter(order=other).exists()


def test_priority_decides_the_order_and_reordering_changes_it(alpha, gateway, backup_gateway, bridge):
    main_key, backup_key = new_api_key(), new_api_key()
    with tenant_context(alpha):
        configure(alpha, main_url=gateway.base, main_key=main_key, backup_url=backup_gateway.base,
                  backup_key=backup_key)
        config = PluginConfig.objects.get(slug="sandbox")
        assert [a.key for a in plugin_accounts(config=config)] == ["main", "backup"]
        plugin_accounts_reorder(shop=alpha, slug="sandbox", keys=["backup", "main"])
        assert [a.key for a in plugin_accounts(config=config)] == ["backup", "main"]
        _, payment, action, _ = start(alpha, bridge)
        assert payment.account == "backup" and action.url.startswith(backup_gateway.base)
        with pytest.raises(PluginError, match="exactly once"):
            plugin_accounts_reorder(shop=alpha, slug="sandbox", keys=["backup"])
        assert [a.key for a in plugin_accounts(config=config)] == ["backup", "main"]
        assert AuditEvent.objects.filter(action="plugin.accounts_reordered").count() == 1


def test_every_account_down_is_one_retryable_error_and_one_failed_payment(alpha, dead_url, bridge):
    with tenant_context(alpha):
        configure(alpha, main_url=dead_url, main_key=new_api_key(), backup_url=dead_url, backup_key=new_api_key())
        sku, _ = make_stock(alpha)
        order = place_order(sku)
        with pytest.raises(PaymentError) as error:
            payment_start(order=order, provider_slug="sandbox", return_url=RETURN_URL,
                          notify_url=bridge.url(WEBHOOK_PATH))
        assert error.value.retryable
        assert error.value.message == "The sandbox gateway is not reachable. Try again in a moment."
        assert "backup" not in error.value.buyer_message and "main" not in error.value.buyer_message
        # documented: the one payment row is marked failed and says what was tried; nothing else
        payment, = Payment.objects.filter(order=order)
        assert payment.status == "failed" and not payment.external_id
        assert payment.data["attempts"] == [{"account": "main", "error": "retryable"},
                                            {"account": "backup", "error": "retryable"}]
        assert not Refund.objects.exists() and not WebhookEvent.objects.exists()
        order.refresh_from_db()
        assert order.status == Order.Status.PENDING_PAYMENT  # the buyer may try again


def test_an_order_placed_with_payment_fails_over_before_its_payment_is_written(alpha, alice, backup_gateway,
                                                                              dead_url):
    """Placing an order with ``payment`` asks the gateways before the payment's row is
    written (decision 0053): the row is written once, with the account that took it, the
    accounts tried and the gateway's id — or failed, with every account tried."""
    from tests.api.test_commerce_api import api

    backup_key = new_api_key()
    with tenant_context(alpha):
        configure(alpha, main_url=dead_url, main_key=new_api_key(), backup_url=backup_gateway.base,
                  backup_key=backup_key)
        sku, _ = make_stock(alpha, keys=2)
    client = api(alpha, alice)

    def place(contact):
        return client.post("/api/v1/orders/", json.dumps({
            "lines": [{"sku_id": sku.pk, "quantity": 1}], "contact": contact, "query_password": "1234",
            "payment": {"provider": "sandbox"}}), content_type="application/json")

    placed = place("over@example.com")
    assert placed.status_code == 201 and placed.json()["payment_error"] is None, placed.content
    answer = placed.json()["payment"]
    assert answer["url"].startswith(f"{backup_gateway.base}/pay/")
    with tenant_context(alpha):
        payment = Payment.objects.get(pk=answer["payment_id"])
        assert (payment.account, payment.status, payment.external_id) == ("backup", "pending", answer["external_id"])
        assert payment.data["attempts"] == [{"account": "main", "error": "retryable"}]
    assert at_gateway(backup_gateway, backup_key, payment.external_id)["reference"] == str(payment.pk)

    with tenant_context(alpha):
        plugin_account_save(shop=alpha, slug="sandbox", key="backup", label="Backup merchant",
                            data={"gateway_url": dead_url, "api_key": backup_key})
    down = place("down@example.com")
    assert down.status_code == 201, down.content
    assert down.json()["payment"] is None and down.json()["payment_error"]["retryable"] is True
    with tenant_context(alpha):
        failed = Payment.objects.get(order__number=down.json()["number"])
        assert failed.status == "failed" and not failed.external_id
        assert failed.data["attempts"] == [{"account": "main", "error": "retryable"},
                                           {"account": "backup", "error": "retryable"}]
        assert Order.objects.get(number=down.json()["number"]).status == Order.Status.PENDING_PAYMENT


# --- webhooks, refunds and polls use the account that took the payment -------------------

def test_a_backup_payment_webhook_is_verified_with_the_backup_secret_only(alpha, backup_gateway, dead_url, bridge):
    main_key, backup_key = new_api_key(), new_api_key()
    with tenant_context(alpha):
        configure(alpha, main_url=dead_url, main_key=main_key, backup_url=backup_gateway.base, backup_key=backup_key)
        order, payment, _, _ = start(alpha, bridge)
        assert payment.account == "backup"
        body = succeeded_body(payment)

        # at the backup's address, signed with the main merchant's secret: refused
        assert post_hook(BACKUP_PATH, body, main_key, alpha).status_code == 400
        # the main's address, the main's signature, a backup payment: refused, nothing stored
        refused = post_hook(WEBHOOK_PATH, body, main_key, alpha)
        assert refused.status_code == 400 and b"another merchant account" not in refused.content
        assert not WebhookEvent.objects.exists()
        order.refresh_from_db()
        assert order.status == Order.Status.PENDING_PAYMENT
        # an unknown account has no address at all
        assert post_hook(f"{WEBHOOK_PATH}spare/", body, backup_key, alpha).status_code == 404

        # the genuine event, at the backup's address with the backup's signature
        assert post_hook(BACKUP_PATH, body, backup_key, alpha).status_code == 200
        assert post_hook(BACKUP_PATH, body, backup_key, alpha).status_code == 200  # a replay: once only
        order.refresh_from_db()
        assert order.status == Order.Status.DELIVERED
        assert list(WebhookEvent.objects.values_list("account", "result")) == [("backup", "paid")]


def test_a_backup_payment_is_refunded_at_the_backup_gateway(alpha, gateway, backup_gateway, bridge):
    main_key, backup_key = new_api_key(), new_api_key()
    with tenant_context(alpha):
        configure(alpha, main_url=gateway.base, main_key=main_key, backup_url=backup_gateway.base,
                  backup_key=backup_key)
        plugin_accounts_reorder(shop=alpha, slug="sandbox", keys=["backup", "main"])
        order, payment, action, _ = start(alpha, bridge)
        bridge.call(lambda: click(action.url))
        # the shop switches back to the main merchant; the old payment still belongs to the backup
        plugin_accounts_reorder(shop=alpha, slug="sandbox", keys=["main", "backup"])
        plugin_account_save(shop=alpha, slug="sandbox", key="backup", label="Backup", enabled=False)

        order_refund(order=order, amount=500, reason="One key did not work", actor="staff@alpha.example")
        refund = Refund.objects.get(payment=payment)
        assert refund.status == "succeeded" and refund.external_id.startswith("re_")
        assert at_gateway(backup_gateway, backup_key, payment.external_id)["amount_refunded"] == 500
        # the gateway's refund notice comes to the backup's address and is matched
        bridge.pump(1)
        assert bridge.log[-1][0].path == BACKUP_PATH
        assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_confirmed"


def test_the_poller_asks_the_account_that_took_the_payment(alpha, gateway, backup_gateway, dead_url, bridge):
    main_key, backup_key = new_api_key(), new_api_key()
    with tenant_context(alpha):
        configure(alpha, main_url=dead_url, main_key=main_key, backup_url=backup_gateway.base, backup_key=backup_key)
        order, payment, action, _ = start(alpha, bridge)
        # the main merchant is back up (the poll would find nothing there)
        plugin_configure(shop=alpha, slug="sandbox", data={"gateway_url": gateway.base, "api_key": ""})
        bridge.close()  # the shop is unreachable when the buyer pays: the webhook is lost
        assert click(action.url).status_code == 303
        Payment.objects.filter(pk=payment.pk).update(created_at=payment.created_at - timedelta(minutes=10))
        assert payments_poll_pending() == 1
        order.refresh_from_db()
        assert order.status == Order.Status.DELIVERED
        assert list(WebhookEvent.objects.values_list("account", "result")) == [("backup", "paid")]


# --- a real adapter: Stripe --------------------------------------------------------------

@pytest.fixture
def fake_stripe(settings):
    settings.KAMENG_PAYMENT_HTTP_BACKOFF = 0.01
    with FakeStripe() as fake:
        settings.KAMENG_STRIPE_API_BASE = fake.base_url
        yield fake
    assert not fake.crashes, fake.crashes


MAIN_STRIPE_KEY = "sk_test_" + "51Main" + "M" * 40  # revoked: the fake refuses it
MAIN_STRIPE_WEBHOOK_SECRET = "whsec_" + "MainSigningSecret" + "M" * 20
STRIPE_HOOK = "/hooks/payments/stripe/"


def enable_two_stripe_accounts(shop):
    plugin_configure(shop=shop, slug="stripe", enable=True, data={
        "secret_key": MAIN_STRIPE_KEY, "webhook_secret": MAIN_STRIPE_WEBHOOK_SECRET})
    plugin_account_save(shop=shop, slug="stripe", key="backup", label="Backup Stripe", create=True, data={
        "secret_key": STRIPE_KEY, "webhook_secret": STRIPE_WEBHOOK_SECRET})


def stripe_post(shop, fake, event, path, secret):
    body, headers = fake.signed(event, secrets=(secret,))
    return Client(HTTP_HOST=host_of(shop)).post(path, data=body, content_type="application/json",
                                                 headers={"Stripe-Signature": headers["Stripe-Signature"]})


def test_stripe_misconfigured_main_fails_over_and_everything_after_uses_the_backup(alpha, fake_stripe, bridge):
    with tenant_context(alpha):
        enable_two_stripe_accounts(alpha)
        order, payment, action, _ = start(alpha, bridge, slug="stripe", hook=STRIPE_HOOK)
        assert payment.account == "backup" and payment.data["attempts"] == [{"account": "main",
                                                                             "error": "misconfigured"}]
        refused, taken = fake_stripe.received("POST", r"/v1/checkout/sessions")
        assert refused.headers["Authorization"] == f"Bearer {MAIN_STRIPE_KEY}"
        assert taken.headers["Authorization"] == f"Bearer {STRIPE_KEY}"

        completed, _ = fake_stripe.pay(payment.external_id)
        # the main's address and secret cannot complete the backup's payment
        assert stripe_post(alpha, fake_stripe, completed, STRIPE_HOOK, MAIN_STRIPE_WEBHOOK_SECRET).status_code == 400
        assert stripe_post(alpha, fake_stripe, completed, f"{STRIPE_HOOK}backup/",
                           MAIN_STRIPE_WEBHOOK_SECRET).status_code == 400
        order.refresh_from_db()
        assert order.status == Order.Status.PENDING_PAYMENT and not WebhookEvent.objects.exists()
        assert stripe_post(alpha, fake_stripe, completed, f"{STRIPE_HOOK}backup/",
                           STRIPE_WEBHOOK_SECRET).status_code == 200
        order.refresh_from_db()
        assert order.status == Order.Status.DELIVERED

        order_refund(order=order, amount=2000, reason="test", actor="staff@alpha.example")
        refund_call = fake_stripe.received("POST", r"/v1/refunds")[-1]
        assert refund_call.headers["Authorization"] == f"Bearer {STRIPE_KEY}"
        order.refresh_from_db()
        assert order.status == Order.Status.REFUNDED


def test_stripe_gateway_errors_fail_over_but_a_decline_never_does(alpha, fake_stripe, bridge):
    with tenant_context(alpha):
        plugin_configure(shop=alpha, slug="stripe", enable=True, data={
            "secret_key": STRIPE_KEY, "webhook_secret": STRIPE_WEBHOOK_SECRET})
        plugin_account_save(shop=alpha, slug="stripe", key="backup", label="Backup Stripe", create=True, data={
            "secret_key": STRIPE_KEY, "webhook_secret": STRIPE_WEBHOOK_SECRET})

        fake_stripe.fail("POST", r"/v1/checkout/sessions", status=402)
        sku, _ = make_stock(alpha)
        order = place_order(sku)
        with pytest.raises(PaymentDeclined):
            payment_start(order=order, provider_slug="stripe", return_url=RETURN_URL,
                          notify_url=bridge.url(STRIPE_HOOK))
        assert len(fake_stripe.received("POST", r"/v1/checkout/sessions")) == 1  # the backup was not asked
        payment, = Payment.objects.filter(order=order)
        assert payment.status == "failed" and payment.data["attempts"] == [{"account": "main", "error": "declined"}]

        fake_stripe.fail("POST", r"/v1/checkout/sessions", status=503, times=3)  # every retry of the main
        payment, _ = payment_start(order=order, provider_slug="stripe", return_url=RETURN_URL,
                                   notify_url=bridge.url(STRIPE_HOOK))
        payment.refresh_from_db()
        assert payment.account == "backup" and payment.external_id
        assert payment.data["attempts"] == [{"account": "main", "error": "retryable"}]


# --- accounts: validation, permissions, secrets -------------------------------------------

def test_a_new_account_is_validated_by_the_plugin_form_and_nothing_half_written(sandbox_shop, gateway):
    config = PluginConfig.objects.get(slug="sandbox")
    with pytest.raises(PluginError) as error:
        plugin_account_save(shop=sandbox_shop, slug="sandbox", key="backup", label="Backup", create=True,
                            data={"gateway_url": gateway.base, "api_key": "not-a-sandbox-key"})
    assert "api_key" in error.value.errors
    with pytest.raises(PluginError) as error:
        plugin_account_save(shop=sandbox_shop, slug="sandbox", key="Bad Key!", label="", create=True,
                            data={"gateway_url": gateway.base, "api_key": new_api_key()})
    assert set(error.value.errors) == {"key", "label"}
    with pytest.raises(PluginError, match="one account only"):
        plugin_account_save(shop=sandbox_shop, slug="wallet", key="backup", label="Backup", create=True, data={})
    assert not PluginAccount.objects.filter(config=config).exists()
    plugin_account_save(shop=sandbox_shop, slug="sandbox", key="backup", label="Backup", create=True,
                        data={"gateway_url": gateway.base, "api_key": new_api_key()})
    with pytest.raises(PluginError) as error:
        plugin_account_save(shop=sandbox_shop, slug="sandbox", key="backup", label="Again", create=True,
                            data={"gateway_url": gateway.base, "api_key": new_api_key()})
    assert "already" in error.value.errors["key"][0]
    assert sorted(PluginAccount.objects.values_list("key", flat=True)) == ["backup", "main"]


def test_accounts_api_is_for_managers_and_never_shows_secrets(alpha, alice, carol, gateway, caplog):
    backup_key = new_api_key()
    with caplog.at_level(logging.DEBUG):
        api = Client(HTTP_HOST=host_of(alpha), HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
        staff = Client(HTTP_HOST=host_of(alpha), HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=carol).key}")
        main_key = new_api_key()
        assert api.patch("/api/v1/plugins/sandbox/", {"enabled": True, "settings": {
            "gateway_url": gateway.base, "api_key": main_key}}, content_type="application/json").status_code == 200
        new = {"key": "backup", "label": "Backup merchant", "settings": {"gateway_url": gateway.base,
                                                                          "api_key": backup_key}}
        assert staff.post("/api/v1/plugins/sandbox/accounts/", new, content_type="application/json").status_code == 403
        assert staff.get("/api/v1/plugins/sandbox/accounts/").status_code == 403
        created = api.post("/api/v1/plugins/sandbox/accounts/", new, content_type="application/json")
        assert created.status_code == 201, created.content
        assert created.json() == {"key": "backup", "label": "Backup merchant", "priority": 1, "enabled": True,
                                  "settings": {"gateway_url": gateway.base}, "stored_secrets": ["api_key"],
                                  "webhook_path": "/hooks/payments/sandbox/backup/"}
        bad = api.post("/api/v1/plugins/sandbox/accounts/", {**new, "key": "spare", "settings": {"api_key": "x"}},
                       content_type="application/json")
        assert bad.status_code == 400 and "api_key" in bad.json()["errors"]
        assert staff.patch("/api/v1/plugins/sandbox/accounts/backup/", {"enabled": False},
                           content_type="application/json").status_code == 403
        changed = api.patch("/api/v1/plugins/sandbox/accounts/main/", {"enabled": False, "label": "Old merchant"},
                            content_type="application/json")
        assert changed.status_code == 200 and changed.json()["enabled"] is False
        order = api.post("/api/v1/plugins/sandbox/accounts/reorder/", {"keys": ["backup", "main"]},
                         content_type="application/json")
        assert order.status_code == 200 and [a["key"] for a in order.json()] == ["backup", "main"]
        listed = api.get("/api/v1/plugins/sandbox/accounts/")
        assert [(a["key"], a["enabled"]) for a in listed.json()] == [("backup", True), ("main", False)]
        assert api.delete("/api/v1/plugins/sandbox/accounts/main/").status_code == 400
        assert staff.delete("/api/v1/plugins/sandbox/accounts/backup/").status_code == 403

        console = Client(HTTP_HOST=host_of(alpha))
        console.force_login(alice)
        page = console.get("/manage/plugins/sandbox/accounts/")
        assert page.status_code == 200 and b"Backup merchant" in page.content
        assert b"/hooks/payments/sandbox/backup/" in page.content
        edit = console.get("/manage/plugins/sandbox/accounts/backup/")
        assert edit.status_code == 200 and b"Stored encrypted: api_key" in edit.content
        pages = [created.content, listed.content, changed.content, order.content, page.content, edit.content]

        viewer = Client(HTTP_HOST=host_of(alpha))
        viewer.force_login(carol)
        assert viewer.post("/manage/plugins/sandbox/accounts/backup/", {"account_label": "Mine"}).status_code == 403
        assert viewer.post("/manage/plugins/sandbox/accounts/backup/move/", {"direction": "up"}).status_code == 403
        assert viewer.get("/manage/plugins/sandbox/accounts/").status_code == 403
        assert viewer.get("/manage/plugins/sandbox/accounts/backup/").status_code == 403

    with tenant_context(alpha):
        account = PluginAccount.objects.get(key="backup")
        assert backup_key not in json.dumps(account.secrets)  # encrypted at rest
        actions = list(AuditEvent.objects.filter(action__startswith="plugin.account").order_by("pk")
                       .values_list("action", "data__account"))
        assert actions == [("plugin.account_created", "backup"), ("plugin.account_changed", "main"),
                           ("plugin.accounts_reordered", None)]
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in (backup_key, main_key):
        assert secret not in text
        assert all(secret.encode() not in content for content in pages)


def test_console_adds_an_account_that_then_takes_payments(alpha, alice, gateway, backup_gateway, dead_url, bridge):
    with tenant_context(alpha):
        configure(alpha, main_url=dead_url, main_key=new_api_key())
    console = Client(HTTP_HOST=host_of(alpha))
    console.force_login(alice)
    assert b"Merchant accounts" in console.get("/manage/plugins/sandbox/").content
    refused = console.post("/manage/plugins/sandbox/accounts/new/", {
        "account_label": "Backup", "account_key": "backup", "gateway_url": backup_gateway.base, "api_key": "nope"})
    assert refused.status_code == 200 and b"Sandbox API keys start with sk_sandbox_." in refused.content
    saved = console.post("/manage/plugins/sandbox/accounts/new/", {
        "account_label": "Backup", "account_key": "backup", "account_enabled": "on",
        "gateway_url": backup_gateway.base, "api_key": new_api_key()})
    assert saved.status_code == 302
    with tenant_context(alpha):
        _, payment, action, _ = start(alpha, bridge)
        assert payment.account == "backup" and action.url.startswith(backup_gateway.base)
    moved = console.post("/manage/plugins/sandbox/accounts/backup/move/", {"direction": "up"})
    assert moved.status_code == 302
    with tenant_context(alpha):
        assert [a.key for a in plugin_accounts(config=PluginConfig.objects.get(slug="sandbox"))] == ["backup", "main"]


def test_the_buyer_never_sees_which_account_took_the_payment(alpha, alice, backup_gateway, dead_url, bridge):
    with tenant_context(alpha):
        configure(alpha, main_url=dead_url, main_key=new_api_key(), backup_url=backup_gateway.base,
                  backup_key=new_api_key())
        order, payment, action, _ = start(alpha, bridge)
        bridge.call(lambda: click(action.url))
        order.refresh_from_db()
    buyer = Client(HTTP_HOST=host_of(alpha))
    page = buyer.get(f"/order/{order.number}/?t={order.access_token}")
    assert page.status_code == 200 and order.number.encode() in page.content
    assert b"Backup merchant" not in page.content and b"backup" not in page.content.lower()
    # the shop's staff do see it on the order
    console = Client(HTTP_HOST=host_of(alpha))
    console.force_login(alice)
    staff_page = console.get(f"/manage/orders/order/{order.pk}/change/").content.decode()
    assert ">backup<" in staff_page.replace(" ", "").replace("\n", "")


# --- reconciliation per account -----------------------------------------------------------

def test_reconciliation_reads_each_account_report_and_fixes_through_the_right_account(alpha, gateway,
                                                                                     backup_gateway, bridge):
    from django.utils import timezone

    from platform_core.payments.models import ReconciliationItem
    from platform_core.payments.reconciliation import reconcile_day, reconciliation_fix

    main_key, backup_key = new_api_key(), new_api_key()
    with tenant_context(alpha):
        configure(alpha, main_url=gateway.base, main_key=main_key, backup_url=backup_gateway.base,
                  backup_key=backup_key)
        _, on_main, action, _ = start(alpha, bridge)
        bridge.call(lambda: click(action.url))
        plugin_accounts_reorder(shop=alpha, slug="sandbox", keys=["backup", "main"])
        _, on_backup, action, _ = start(alpha, bridge)
        bridge.call(lambda: click(action.url))
        lost_order, lost, action, _ = start(alpha, bridge)
        assert (on_main.account, on_backup.account, lost.account) == ("main", "backup", "backup")
        bridge.close()  # the backup's webhook for this one is lost
        assert click(action.url).status_code == 303
        # the backup merchant is switched off since; its payments still reconcile
        plugin_account_save(shop=alpha, slug="sandbox", key="backup", label="Backup", enabled=False)

        run = reconcile_day(provider_slug="sandbox", day=timezone.now().date())
        assert run.gateway_payments == 3 and run.matched == 2
        item, = run.items.all()
        assert (item.kind, item.payment_id) == (ReconciliationItem.Kind.PAID_NOT_RECORDED, lost.pk)
        reconciliation_fix(item_id=item.pk)
        lost_order.refresh_from_db()
        assert lost_order.status == Order.Status.DELIVERED
        assert WebhookEvent.objects.get(event_id__startswith="reconcile:").account == "backup"


def test_each_account_tests_its_own_connection(alpha, alice, carol, fake_stripe):
    with tenant_context(alpha):
        enable_two_stripe_accounts(alpha)
    api = Client(HTTP_HOST=host_of(alpha), HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    main = api.post("/api/v1/plugins/stripe/accounts/main/test-connection/")
    assert main.status_code == 400 and "refused the shop" in main.json()["message"]
    backup = api.post("/api/v1/plugins/stripe/accounts/backup/test-connection/")
    assert backup.status_code == 200 and backup.json()["ok"] is True
    assert [r.headers["Authorization"] for r in fake_stripe.received("GET", r"/v1/balance")] == [
        f"Bearer {MAIN_STRIPE_KEY}", f"Bearer {STRIPE_KEY}"]
    assert api.post("/api/v1/plugins/stripe/accounts/spare/test-connection/").status_code == 400

    console = Client(HTTP_HOST=host_of(alpha))
    console.force_login(alice)
    answer = console.post("/manage/plugins/stripe/accounts/backup/test/", follow=True)
    assert b"Connected to Stripe in test mode" in answer.content
    viewer = Client(HTTP_HOST=host_of(alpha))
    viewer.force_login(carol)
    assert viewer.post("/manage/plugins/stripe/accounts/backup/test/").status_code == 403
    with tenant_context(alpha):
        assert list(AuditEvent.objects.filter(action="plugin.connection_tested").order_by("pk")
                    .values_list("data__account", "data__ok")) == [(None, False), ("backup", True), ("backup", True)]


def test_the_api_schema_describes_the_account_endpoints(alpha):
    import yaml

    response = Client(HTTP_HOST=host_of(alpha)).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/json") \
        else yaml.safe_load(response.content)
    paths = schema["paths"]
    for path in ("/api/v1/plugins/{slug}/accounts/", "/api/v1/plugins/{slug}/accounts/{key}/",
                 "/api/v1/plugins/{slug}/accounts/reorder/", "/api/v1/plugins/{slug}/accounts/{key}/test-connection/"):
        assert path in paths, path
    assert set(paths["/api/v1/plugins/{slug}/accounts/{key}/"]) >= {"get", "patch", "delete"}


# --- a China gateway: Alipay QR with a main and a backup app ------------------------------

def test_alipay_main_app_refused_the_backup_app_takes_notifies_and_refunds(alpha, bridge, settings):
    from tests.fakegateways.alipay import FakeAlipay, rsa_key
    from tests.payments.gateways.china_helpers import assert_delivered, digits, start_payment
    from tests.payments.gateways.test_alipay import settings_for

    settings.KAMENG_PAYMENT_HTTP_BACKOFF = 0.01
    with FakeAlipay() as alipay:
        settings.KAMENG_ALIPAY_API_BASE = alipay.gateway_url
        main_app, backup_app = "2021" + digits(12), "2021" + digits(12)
        alipay.register_app(backup_app, rsa_key("alipay-backup").public_key())  # the main app was revoked
        alipay.hosts[host_of(alpha)] = bridge.url("")
        with tenant_context(alpha):
            plugin_configure(shop=alpha, slug="alipay", enable=True,
                             data=settings_for(alipay, main_app, key=rsa_key("alipay-main"), checkout="qr"))
            plugin_account_save(shop=alpha, slug="alipay", key="backup", label="Backup Alipay merchant", create=True,
                                data=settings_for(alipay, backup_app, key=rsa_key("alipay-backup"), checkout="qr"))
            started = start_payment(alpha, "alipay", bridge.url("/hooks/payments/alipay/"))
            payment = started["payment"]
            assert started["action"].kind == "qr"
            assert payment.account == "backup"
            assert payment.data["attempts"] == [{"account": "main", "error": "misconfigured"}]

            answer = bridge.call(lambda: alipay.pay(payment.external_id))
            assert answer.status_code == 200 and answer.text == "success"
            assert bridge.log[-1][0].path == "/hooks/payments/alipay/backup/"
            assert_delivered(started)

            order_refund(order=started["order"], amount=2000, reason="test", actor="staff@alpha.example")
            assert alipay.trades[payment.external_id]["refunded"] == 2000
            assert alipay.trades[payment.external_id]["app_id"] == backup_app
            alipay.settle()
        assert alipay.crashes == []
