"""Stripe end to end against the fake Stripe over real HTTP: Checkout Session -> buyer
pays -> signed webhook -> order delivered; refunds; status queries; every kind of bad
webhook refused without a state change; timeouts never charge twice; a lost webhook is
recovered by the poller; secrets never leak."""
from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
from django.test import Client
from django_tenants.utils import tenant_context
from rest_framework.authtoken.models import Token

from platform_core.inventory.models import CardKey
from platform_core.orders.models import Order
from platform_core.orders.services import order_delivered_items, order_refund
from platform_core.payments.models import Payment, Refund, WebhookEvent
from platform_core.payments.services import payment_start, payments_poll_pending, provider_for
from plugins.payment import PaymentMisconfigured, PaymentRetryable, WebhookRejected
from plugins.payments.stripe.plugin import verify_signature
from plugins.services import PluginError, plugin_configure
from tests.conftest import host_of
from tests.console.fixtures import carol  # noqa: F401 - a fixture
from tests.fakegateways.stripe import API_KEY, WEBHOOK_SECRET
from tests.payments.conftest import make_stock, place_order
from tests.payments.gateways.conftest import enable_stripe

HOOK = "/hooks/payments/stripe/"
RETURN_URL = "http://alpha.kameng.test/order/return/"


def start(shop, bridge, *, quantity=2, keys=3, price=1000):
    sku, plaintexts = make_stock(shop, keys=keys, price=price)
    order = place_order(sku, quantity=quantity)
    payment, action = payment_start(order=order, provider_slug="stripe", return_url=RETURN_URL,
                                    notify_url=bridge.url(HOOK))
    return sku, plaintexts, order, payment, action


def deliver(bridge, fake, event, **options):
    """The fake Stripe POSTs the signed event over HTTP to the shop (through the bridge)."""
    response = bridge.call(lambda: fake.notify(bridge.url(HOOK), event, **options))
    return response


def post(client, fake, event=None, *, body: bytes | None = None, header: str | None = None, **options):
    """Deliver a signed (or deliberately spoiled) event straight through the test client."""
    if body is None:
        body, headers = fake.signed(event, **options)
        header = headers["Stripe-Signature"] if header is None else header
    headers = {"Stripe-Signature": header} if header is not None else {}
    return client.post(HOOK, data=body, content_type="application/json", headers=headers)


# --- the happy path ----------------------------------------------------------------------

def test_buyer_pays_by_card_and_the_order_is_delivered(stripe_shop, fake_stripe, bridge):
    sku, plaintexts, order, payment, action = start(stripe_shop, bridge)
    assert action.kind == "redirect" and action.url.startswith(f"{fake_stripe.base_url}/c/pay/cs_test_")
    payment.refresh_from_db()
    assert payment.external_id == action.external_id and payment.status == "pending"

    # the wire format Stripe sees
    created, = fake_stripe.received("POST", r"/v1/checkout/sessions")
    assert created.headers["Authorization"] == f"Bearer {API_KEY}"
    assert created.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert created.headers["Stripe-Version"] == "2024-06-20"
    assert created.headers["Idempotency-Key"] == f"kameng-shop_alpha-pay-{payment.pk}-{order.number}"
    assert created.form() == {
        "mode": "payment", "success_url": RETURN_URL, "cancel_url": RETURN_URL,
        "client_reference_id": str(payment.pk), "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "cny", "line_items[0][price_data][unit_amount]": "2000",
        "line_items[0][price_data][product_data][name]": f"Order {order.number}",
        "metadata[kameng_payment]": str(payment.pk), "metadata[kameng_order]": order.number,
        "payment_intent_data[metadata][kameng_payment]": str(payment.pk),
        "payment_intent_data[metadata][kameng_order]": order.number,
    }

    completed, intent_succeeded = fake_stripe.pay(payment.external_id)
    assert deliver(bridge, fake_stripe, completed).status_code == 200
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.DELIVERED and order.payment_method == "stripe"
    assert payment.status == "succeeded"
    delivered = [item.secret for item in order_delivered_items(order)]
    assert len(delivered) == 2 and set(delivered) <= set(plaintexts)
    assert CardKey.objects.filter(sku=sku, status="sold").count() == 2

    # the PaymentIntent's own success comes too; nothing more happens
    assert deliver(bridge, fake_stripe, intent_succeeded).status_code == 200
    assert dict(WebhookEvent.objects.values_list("event_id", "result")) == {
        completed["id"]: "paid", intent_succeeded["id"]: "already_succeeded"}
    assert order.events.filter(kind="order.paid").count() == 1


def test_payment_intent_success_alone_completes_the_order(stripe_shop, fake_stripe, bridge):
    """Stripe does not keep events in order: the intent may come before the session."""
    _, _, order, payment, _ = start(stripe_shop, bridge)
    completed, intent_succeeded = fake_stripe.pay(payment.external_id)
    assert deliver(bridge, fake_stripe, intent_succeeded).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert deliver(bridge, fake_stripe, completed).status_code == 200
    assert WebhookEvent.objects.get(event_id=completed["id"]).result == "already_succeeded"


def test_a_declined_card_then_success_with_another_card(stripe_shop, fake_stripe, bridge):
    _, _, order, payment, _ = start(stripe_shop, bridge)
    assert deliver(bridge, fake_stripe, fake_stripe.decline(payment.external_id)).status_code == 200
    payment.refresh_from_db()
    order.refresh_from_db()
    assert payment.status == "failed" and order.status == Order.Status.PENDING_PAYMENT
    completed, _ = fake_stripe.pay(payment.external_id)
    assert deliver(bridge, fake_stripe, completed).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


# --- refunds ---------------------------------------------------------------------------

def test_refund_partial_then_full_through_stripe(stripe_shop, fake_stripe, bridge):
    _, _, order, payment, _ = start(stripe_shop, bridge)
    completed, _ = fake_stripe.pay(payment.external_id)
    deliver(bridge, fake_stripe, completed)

    order_refund(order=order, amount=500, reason="One key did not work", actor="staff@alpha.example")
    first, = fake_stripe.received("POST", r"/v1/refunds")
    intent = fake_stripe.sessions[payment.external_id]["payment_intent"]
    assert first.form() == {"payment_intent": intent, "amount": "500", "metadata[kameng_payment]": str(payment.pk)}
    assert first.headers["Idempotency-Key"] == f"kameng-shop_alpha-refund-{payment.pk}-0-500"
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "succeeded" and refund.external_id.startswith("re_")
    # Stripe tells the shop afterwards; the refund is matched, not counted twice
    assert deliver(bridge, fake_stripe, fake_stripe.charge_refunded_event(payment.external_id)).status_code == 200
    payment.refresh_from_db()
    assert payment.refunded_amount == 500
    assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_confirmed"

    order_refund(order=order, amount=1500, reason="Changed their mind", actor="staff@alpha.example")
    second = fake_stripe.received("POST", r"/v1/refunds")[1]
    assert second.headers["Idempotency-Key"] == f"kameng-shop_alpha-refund-{payment.pk}-500-1500"
    # the second charge.refunded lists both refunds: both known, nothing added
    deliver(bridge, fake_stripe, fake_stripe.charge_refunded_event(payment.external_id))
    payment.refresh_from_db()
    order.refresh_from_db()
    assert payment.refunded_amount == 2000 and order.status == Order.Status.REFUNDED
    assert fake_stripe.charge_of(payment.external_id)["amount_refunded"] == 2000
    assert sorted(WebhookEvent.objects.filter(kind="refund.succeeded").values_list("result", flat=True)) == \
        ["refund_confirmed"] * 3
    with pytest.raises(Exception):  # nothing left
        order_refund(order=order, amount=1, reason="again", actor="staff@alpha.example")
    assert len(fake_stripe.received("POST", r"/v1/refunds")) == 2


@pytest.mark.parametrize("embedded, metadata", [(True, True), (False, False)])
def test_a_refund_made_in_the_stripe_dashboard_is_recorded(stripe_shop, fake_stripe, bridge, embedded, metadata):
    """Newer API versions send charges without their refunds; older charges lack our
    metadata: the adapter then asks Stripe which refunds and which session."""
    fake_stripe.embed_refunds, fake_stripe.charge_metadata = embedded, metadata
    _, _, order, payment, _ = start(stripe_shop, bridge)
    completed, _ = fake_stripe.pay(payment.external_id)
    deliver(bridge, fake_stripe, completed)
    event = fake_stripe.refund_in_dashboard(payment.external_id, 2000)
    assert deliver(bridge, fake_stripe, event).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and order.refunded_amount == 2000
    assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_recorded"
    asked = [r.path for r in fake_stripe.received("GET")]
    assert ("/v1/refunds" in asked) is not embedded and ("/v1/checkout/sessions" in asked) is not metadata


def test_a_refund_event_before_the_success_event_waits_for_it(stripe_shop, fake_stripe, bridge):
    _, _, order, payment, _ = start(stripe_shop, bridge)
    completed, _ = fake_stripe.pay(payment.external_id)
    refunded = fake_stripe.refund_in_dashboard(payment.external_id, 2000)
    early = deliver(bridge, fake_stripe, refunded)
    assert early.status_code == 409  # Stripe sends it again later
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT and order.refunded_amount == 0
    assert not WebhookEvent.objects.exists() and not Refund.objects.exists()
    deliver(bridge, fake_stripe, completed)
    assert deliver(bridge, fake_stripe, refunded).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and order.refunded_amount == 2000


# --- queries and recovery --------------------------------------------------------------

def test_fetch_status_asks_stripe(stripe_shop, fake_stripe, bridge):
    _, _, order, payment, _ = start(stripe_shop, bridge)
    provider = provider_for("stripe")
    assert provider.fetch_status(payment).status == "pending"
    fake_stripe.pay(payment.external_id)
    status = provider.fetch_status(payment)
    assert (status.status, status.amount, status.currency, status.external_id) == \
        ("succeeded", 2000, "CNY", payment.external_id)
    query = fake_stripe.received("GET", rf"/v1/checkout/sessions/{payment.external_id}")[-1]
    assert query.headers["Authorization"] == f"Bearer {API_KEY}" and query.body == b""
    fake_stripe.sessions[payment.external_id].update(status="expired", payment_status="unpaid")
    assert provider.fetch_status(payment).status == "failed"


def test_a_lost_webhook_is_recovered_by_the_poller(stripe_shop, fake_stripe, bridge):
    _, _, order, payment, _ = start(stripe_shop, bridge)
    fake_stripe.pay(payment.external_id)  # the events never reach the shop
    Payment.objects.filter(pk=payment.pk).update(created_at=payment.created_at - timedelta(minutes=10))
    assert payments_poll_pending() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert payments_poll_pending() == 0


def test_a_timeout_on_create_is_retried_with_the_same_key_and_charges_once(stripe_shop, fake_stripe, bridge,
                                                                          settings):
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (3.05, 1.0)
    fake_stripe.stall("POST", r"/v1/checkout/sessions", 2.0)  # made at Stripe, the answer is late
    _, _, order, payment, action = start(stripe_shop, bridge)
    sent = fake_stripe.received("POST", r"/v1/checkout/sessions")
    assert len(sent) == 2 and sent[0].body == sent[1].body
    assert sent[0].headers["Idempotency-Key"] == sent[1].headers["Idempotency-Key"]
    assert len(fake_stripe.sessions) == 1 and action.external_id in fake_stripe.sessions
    completed, _ = fake_stripe.pay(action.external_id)
    deliver(bridge, fake_stripe, completed)
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


def test_stripe_down_is_a_plain_retryable_error(stripe_shop, fake_stripe, bridge):
    fake_stripe.fail("POST", r"/v1/checkout/sessions", 503, times=3)
    with pytest.raises(PaymentRetryable, match="Stripe had a problem"):
        start(stripe_shop, bridge)
    assert len(fake_stripe.received("POST")) == 3 and not fake_stripe.sessions


def test_the_same_idempotency_key_with_another_body_is_refused_by_the_fake(fake_stripe):
    import requests

    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "k-1"}
    form = {"mode": "payment", "success_url": "https://x.test/", "cancel_url": "https://x.test/",
            "line_items[0][quantity]": "1", "line_items[0][price_data][currency]": "cny",
            "line_items[0][price_data][unit_amount]": "100", "line_items[0][price_data][product_data][name]": "A"}
    first = requests.post(f"{fake_stripe.base_url}/v1/checkout/sessions", data=form, headers=headers, timeout=5)
    again = requests.post(f"{fake_stripe.base_url}/v1/checkout/sessions", data=form, headers=headers, timeout=5)
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    other = requests.post(f"{fake_stripe.base_url}/v1/checkout/sessions",
                          data={**form, "line_items[0][price_data][unit_amount]": "999"}, headers=headers, timeout=5)
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    as_json = requests.post(f"{fake_stripe.base_url}/v1/checkout/sessions", json=form,
                            headers={**headers, "Idempotency-Key": "k-2"}, timeout=5)
    assert as_json.status_code == 400 and "form-encoded" in as_json.json()["error"]["message"]
    assert len(fake_stripe.sessions) == 1


# --- credentials -----------------------------------------------------------------------

def test_a_wrong_key_is_refused_by_stripe_and_explained_without_the_key(alpha, fake_stripe, bridge):
    wrong = "sk_test_" + "W" * 40
    with tenant_context(alpha):
        enable_stripe(alpha, secret_key=wrong)
        sku, _ = make_stock(alpha)
        order = place_order(sku)
        with pytest.raises(PaymentMisconfigured) as error:
            payment_start(order=order, provider_slug="stripe", return_url=RETURN_URL, notify_url=bridge.url(HOOK))
        assert "check the Stripe settings" in error.value.message and wrong[-4:] not in error.value.message
        refused, = fake_stripe.received("POST")
        assert refused.headers["Authorization"] == f"Bearer {wrong}"
        assert not fake_stripe.sessions
        assert Payment.objects.get(order=order).external_id is None


@pytest.mark.parametrize("field, value, words", [
    ("secret_key", "pk_test_" + "a" * 30, "That is the publishable key"),
    ("secret_key", WEBHOOK_SECRET, "That is a webhook signing secret"),
    ("secret_key", "sk_test_short", "starts with sk_test_ or sk_live_"),
    ("secret_key", "sk_prod_" + "a" * 30, "starts with sk_test_ or sk_live_"),
    ("secret_key", "sk_test_" + "a" * 20 + "!", "letters and digits only"),
    ("webhook_secret", "secret_" + "a" * 30, "starts with whsec_"),
    ("webhook_secret", "whsec_abc", "at least 16"),
])
def test_settings_refuse_wrong_key_formats_with_a_clear_message(alpha, field, value, words):
    data = {"secret_key": API_KEY, "webhook_secret": WEBHOOK_SECRET, field: value}
    with tenant_context(alpha):
        with pytest.raises(PluginError) as error:
            plugin_configure(shop=alpha, slug="stripe", data=data, enable=True)
        assert words in " ".join(error.value.errors[field])


@pytest.mark.parametrize("key", ["sk_live_" + "a1" * 20, "rk_test_" + "b2" * 20, "rk_live_" + "c3" * 20])
def test_live_and_restricted_keys_are_accepted(alpha, key):
    with tenant_context(alpha):
        config = plugin_configure(shop=alpha, slug="stripe", data={"secret_key": key,
                                                                   "webhook_secret": WEBHOOK_SECRET}, enable=True)
        assert key not in json.dumps(config.settings) + json.dumps(config.secrets)
        assert provider_for("stripe").secret("secret_key") == key


def test_test_connection_reads_the_balance(stripe_shop, fake_stripe):
    assert provider_for("stripe").test_connection() == "Connected to Stripe in test mode: the secret key works."
    assert fake_stripe.received("GET", r"/v1/balance")[0].headers["Authorization"] == f"Bearer {API_KEY}"
    fake_stripe.api_key = "sk_test_" + "R" * 40  # the key was rolled in the Dashboard
    with pytest.raises(PaymentMisconfigured):
        provider_for("stripe").test_connection()


# --- bad webhooks ------------------------------------------------------------------------

@pytest.fixture
def pending(stripe_shop, fake_stripe, bridge):
    """A Stripe payment whose buyer paid; the genuine event not yet delivered."""
    sku, _, order, payment, _ = start(stripe_shop, bridge)
    completed, intent_succeeded = fake_stripe.pay(payment.external_id)
    return {"sku": sku, "order": order, "payment": payment, "event": completed,
            "client": Client(HTTP_HOST=host_of(stripe_shop))}


def assert_untouched(pending):
    order, payment = pending["order"], pending["payment"]
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT and payment.status == "pending"
    assert CardKey.objects.filter(sku=pending["sku"], status="sold").count() == 0
    assert not WebhookEvent.objects.exists()


def test_the_genuine_event_is_accepted(pending, fake_stripe):
    assert post(pending["client"], fake_stripe, pending["event"]).status_code == 200
    pending["order"].refresh_from_db()
    assert pending["order"].status == Order.Status.DELIVERED


@pytest.mark.parametrize("case", [
    "forged", "stale", "future", "no_header", "garbage_header", "no_v1", "only_v0", "short_signature",
    "duplicate_t", "tampered_amount", "tampered_reference", "not_json", "json_array", "no_object",
    "bad_event_id", "amount_as_text", "live_event_for_test_key", "signed_for_another_body",
])
def test_bad_webhooks_are_rejected_with_400_logged_and_change_nothing(pending, fake_stripe, case, caplog):
    client, event, now = pending["client"], pending["event"], int(time.time())
    body, headers = fake_stripe.signed(event)
    with caplog.at_level(logging.WARNING, logger="platform_core.payments.views"):
        if case == "forged":
            response = post(client, fake_stripe, event, secrets=("whsec_" + "x" * 32,))
        elif case == "stale":
            response = post(client, fake_stripe, event, timestamp=now - 400)
        elif case == "future":
            response = post(client, fake_stripe, event, timestamp=now + 400)
        elif case == "no_header":
            response = post(client, fake_stripe, body=body, header=None)
        elif case == "garbage_header":
            response = post(client, fake_stripe, body=body, header="garbage")
        elif case == "no_v1":
            response = post(client, fake_stripe, body=body, header=f"t={now}")
        elif case == "only_v0":
            response = post(client, fake_stripe, body=body, header=f"t={now},v0={'a' * 64}")
        elif case == "short_signature":
            response = post(client, fake_stripe, body=body, header=f"t={now},v1=abc")
        elif case == "duplicate_t":
            response = post(client, fake_stripe, body=body, header=f"t={now},{headers['Stripe-Signature']}")
        elif case == "tampered_amount":
            response = post(client, fake_stripe, body=body.replace(b'"amount_total": 2000', b'"amount_total": 1'),
                            header=headers["Stripe-Signature"])
        elif case == "tampered_reference":
            response = post(client, fake_stripe, body=body.replace(b"kameng_order", b"kameng_0rder"),
                            header=headers["Stripe-Signature"])
        elif case == "not_json":
            bad = b"\xff\xfe not json"
            response = post(client, fake_stripe, body=bad, header=fake_stripe.sign(bad))
        elif case == "json_array":
            response = post(client, fake_stripe, body=b"[1]", header=fake_stripe.sign(b"[1]"))
        elif case == "no_object":
            bad = json.dumps({"id": "evt_1", "type": "checkout.session.completed"}).encode()
            response = post(client, fake_stripe, body=bad, header=fake_stripe.sign(bad))
        elif case == "bad_event_id":
            response = post(client, fake_stripe, {**event, "id": "evt_../../x"})
        elif case == "amount_as_text":
            obj = {**event["data"]["object"], "amount_total": "2000"}
            response = post(client, fake_stripe, {**event, "data": {"object": obj}})
        elif case == "live_event_for_test_key":
            response = post(client, fake_stripe, {**event, "livemode": True})
        else:  # a genuine signature of another event, on this body
            other_body, other_headers = fake_stripe.signed(fake_stripe.event("ping", {}))
            response = post(client, fake_stripe, body=body, header=other_headers["Stripe-Signature"])
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("text/plain")
    assert_untouched(pending)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("payment webhook rejected" in w and "provider=stripe" in w for w in warnings), warnings
    assert not any(WEBHOOK_SECRET in w or API_KEY in w for w in warnings)


def test_a_replayed_event_changes_nothing_the_second_time(pending, fake_stripe):
    client, event = pending["client"], pending["event"]
    body, headers = fake_stripe.signed(event)
    assert post(client, fake_stripe, body=body, header=headers["Stripe-Signature"]).status_code == 200
    for _ in range(2):  # an attacker (or Stripe) sends the very same bytes again
        assert post(client, fake_stripe, body=body, header=headers["Stripe-Signature"]).status_code == 200
    assert WebhookEvent.objects.count() == 1 and pending["order"].events.filter(kind="order.paid").count() == 1
    assert CardKey.objects.filter(sku=pending["sku"], status="sold").count() == 2


def test_a_replay_captured_long_ago_is_stale(pending, fake_stripe):
    old = int(time.time()) - 3600
    response = post(pending["client"], fake_stripe, pending["event"], timestamp=old)
    assert response.status_code == 400 and b"300 seconds" in response.content
    assert_untouched(pending)


def test_a_failure_arriving_after_the_success_changes_nothing(pending, fake_stripe):
    """Re-ordered: the decline of the first card reaches the shop after the success."""
    declined = fake_stripe.decline(pending["payment"].external_id)
    assert post(pending["client"], fake_stripe, pending["event"]).status_code == 200
    assert post(pending["client"], fake_stripe, declined).status_code == 200
    pending["payment"].refresh_from_db()
    pending["order"].refresh_from_db()
    assert pending["payment"].status == "succeeded" and pending["order"].status == Order.Status.DELIVERED


def test_an_event_of_another_shops_stripe_account_pays_nothing_here(pending, fake_stripe, bravo, settings):
    """bravo signs with its own secret; at alpha that signature is worthless."""
    bravo_secret = "whsec_" + "B" * 32
    assert post(pending["client"], fake_stripe, pending["event"], secrets=(bravo_secret,)).status_code == 400
    with tenant_context(bravo):
        enable_stripe(bravo, webhook_secret=bravo_secret)
        response = post(Client(HTTP_HOST=host_of(bravo)), fake_stripe, pending["event"], secrets=(bravo_secret,))
        assert response.status_code == 200  # genuine for bravo, but names no payment of bravo's
        assert WebhookEvent.objects.get().result == "unknown_payment"
    assert_untouched(pending)


def test_events_we_do_not_handle_are_answered_200(pending, fake_stripe):
    for kind in ("customer.created", "payout.paid"):
        assert post(pending["client"], fake_stripe, fake_stripe.event(kind, {"id": "cus_1"})).status_code == 200
    intent_of_someone_else = fake_stripe.event("payment_intent.succeeded", {"id": "pi_x", "amount_received": 5,
                                                                            "currency": "cny", "metadata": {}})
    assert post(pending["client"], fake_stripe, intent_of_someone_else).status_code == 200
    assert_untouched(pending)


@pytest.mark.parametrize("offset, accepted", [(0, True), (300, True), (-300, True), (301, False), (-301, False)])
def test_signature_tolerance_is_300_seconds_both_ways(fake_stripe, offset, accepted):
    body, now = b'{"id": "evt_1"}', 1_700_000_000
    header = fake_stripe.sign(body, timestamp=now + offset)
    if accepted:
        assert verify_signature(secret=WEBHOOK_SECRET, header=header, body=body, now=now) == now + offset
    else:
        with pytest.raises(WebhookRejected, match="300 seconds"):
            verify_signature(secret=WEBHOOK_SECRET, header=header, body=body, now=now)


def test_while_a_secret_is_rolled_any_v1_signature_is_accepted(pending, fake_stripe, alpha):
    """Stripe signs with the old and the new secret during a roll: the shop may already
    hold the new one; an event signed only with a secret the shop does not hold fails."""
    new_secret = "whsec_" + "N" * 32
    both = (WEBHOOK_SECRET, new_secret)
    enable_stripe(alpha, webhook_secret=new_secret)
    assert post(pending["client"], fake_stripe, pending["event"], secrets=(WEBHOOK_SECRET,)).status_code == 400
    assert post(pending["client"], fake_stripe, pending["event"], secrets=both).status_code == 200
    pending["order"].refresh_from_db()
    assert pending["order"].status == Order.Status.DELIVERED


# --- secrets never leak ----------------------------------------------------------------

def test_secrets_appear_in_no_log_and_no_api_or_console_answer(alpha, alice, fake_stripe, bridge, caplog):
    with caplog.at_level(logging.DEBUG):
        token = Token.objects.create(user=alice).key
        api = Client(HTTP_HOST=host_of(alpha), HTTP_AUTHORIZATION=f"Token {token}")
        answer = api.patch("/api/v1/plugins/stripe/", {"enabled": True, "settings": {
            "secret_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}}, content_type="application/json")
        assert answer.status_code == 200 and answer.json()["enabled"] is True
        pages = [answer.content, api.get("/api/v1/plugins/stripe/").content, api.get("/api/v1/plugins/").content]
        console = Client(HTTP_HOST=host_of(alpha))
        console.force_login(alice)
        page = console.get("/manage/plugins/stripe/")
        assert page.status_code == 200
        pages.append(page.content)
        with tenant_context(alpha):
            _, _, order, payment, _ = start(alpha, bridge)
            completed, _ = fake_stripe.pay(payment.external_id)
            deliver(bridge, fake_stripe, completed)
            post(Client(HTTP_HOST=host_of(alpha)), fake_stripe, completed, secrets=("whsec_" + "f" * 32,))  # forged
            order_refund(order=order, amount=2000, reason="test", actor="staff@alpha.example")
            provider_for("stripe").fetch_status(payment)
            provider_for("stripe").test_connection()
            order.refresh_from_db()
            assert order.status == Order.Status.REFUNDED
    pages += [answer.body for _, answer in bridge.log]
    gateway_logs = [r for r in caplog.records if r.name == "kameng.payments.stripe"]
    assert len(gateway_logs) >= 4  # create, refund (session + refund), status, balance: the client did log
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in (API_KEY, WEBHOOK_SECRET, API_KEY[8:], WEBHOOK_SECRET[6:]):
        assert secret not in text
        assert all(secret.encode() not in content for content in pages)


# --- the console's "Test connection" button -------------------------------------------

def test_console_test_connection_button(alpha, alice, fake_stripe):
    from platform_core.audit.models import AuditEvent

    console = Client(HTTP_HOST=host_of(alpha))
    console.force_login(alice)
    page = console.get("/manage/plugins/stripe/")
    assert b"Test connection" in page.content and b"disabled title=\"Save the settings first\"" in page.content
    refused = console.post("/manage/plugins/stripe/test/", follow=True)
    assert b"Save the settings of Stripe (cards) first" in refused.content

    with tenant_context(alpha):
        enable_stripe(alpha)
    answer = console.post("/manage/plugins/stripe/test/", follow=True)
    assert b"Connected to Stripe in test mode: the secret key works." in answer.content
    assert len(fake_stripe.received("GET", r"/v1/balance")) == 1

    fake_stripe.api_key = "sk_test_" + "R" * 40  # rolled in the Stripe Dashboard
    answer = console.post("/manage/plugins/stripe/test/", follow=True)
    assert b"Stripe refused the shop&#x27;s credentials; check the Stripe settings" in answer.content
    assert API_KEY.encode() not in answer.content
    with tenant_context(alpha):
        assert list(AuditEvent.objects.filter(action="plugin.connection_tested")
                    .order_by("pk").values_list("data__ok", flat=True)) == [True, False]


def test_console_test_connection_needs_a_manager(alpha, fake_stripe, carol):
    with tenant_context(alpha):
        enable_stripe(alpha)
    console = Client(HTTP_HOST=host_of(alpha))
    console.force_login(carol)
    assert console.post("/manage/plugins/stripe/test/").status_code == 403
    assert b"Test connection" not in console.get("/manage/plugins/stripe/").content
    assert not fake_stripe.received()


def test_the_buyer_back_on_the_order_page_gets_the_keys_without_a_webhook(stripe_shop, fake_stripe, bridge,
                                                                         django_capture_on_commit_callbacks):
    _, plaintexts, order, payment, _ = start(stripe_shop, bridge)
    fake_stripe.pay(payment.external_id)  # Stripe's events are late
    browser = Client(HTTP_HOST=host_of(stripe_shop))
    browser.get(f"/order/{order.number}/?t={order.access_token}")
    with django_capture_on_commit_callbacks(execute=True):
        from django.core.cache import cache

        cache.clear()  # the first poll after the landing's ten seconds
        assert browser.get(f"/order/{order.number}/status.json").json() == {"status": "pending_payment"}
    assert browser.get(f"/order/{order.number}/status.json").json() == {"status": "delivered"}
    order.refresh_from_db()
    keys = [item.secret for item in order_delivered_items(order)]
    assert len(keys) == 2 and set(keys) <= set(plaintexts)
    page = browser.get(f"/order/{order.number}/").content.decode()
    assert all(key in page for key in keys)


def test_yen_is_sent_to_stripe_as_whole_yen(stripe_shop, fake_stripe, bridge):
    stripe_shop.currency = "JPY"
    stripe_shop.save(update_fields=["currency"])
    _, _, order, payment, _ = start(stripe_shop, bridge, price=1500)
    assert (order.currency, order.total) == ("JPY", 3000)
    created, = fake_stripe.received("POST", r"/v1/checkout/sessions")
    form = created.form()
    assert form["line_items[0][price_data][currency]"] == "jpy"
    assert form["line_items[0][price_data][unit_amount]"] == "3000"
    completed, _ = fake_stripe.pay(payment.external_id)
    assert deliver(bridge, fake_stripe, completed).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


def test_an_expired_checkout_session_fails_the_payment_not_the_order(stripe_shop, fake_stripe, bridge):
    _, _, order, payment, _ = start(stripe_shop, bridge)
    session = dict(fake_stripe.sessions[payment.external_id], status="expired")
    session.pop("_intent_metadata"), session.pop("_name")
    assert deliver(bridge, fake_stripe, fake_stripe.event("checkout.session.expired", session)).status_code == 200
    payment.refresh_from_db()
    order.refresh_from_db()
    assert payment.status == "failed" and order.status == Order.Status.PENDING_PAYMENT


def test_a_delayed_payment_method_delivers_when_the_money_arrives(stripe_shop, fake_stripe, bridge):
    _, _, order, payment, _ = start(stripe_shop, bridge)
    completed_unpaid = fake_stripe.pay_later(payment.external_id)
    assert deliver(bridge, fake_stripe, completed_unpaid).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT and not WebhookEvent.objects.exists()
    assert provider_for("stripe").fetch_status(payment).status == "pending"
    succeeded, _ = fake_stripe.pay(payment.external_id, asynchronous=True)
    assert succeeded["type"] == "checkout.session.async_payment_succeeded"
    assert deliver(bridge, fake_stripe, succeeded).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


def test_a_buyer_sees_plain_words_when_the_shops_stripe_key_is_wrong(alpha, fake_stripe, caplog):
    with tenant_context(alpha):
        enable_stripe(alpha, secret_key="sk_test_" + "W" * 40)
        sku, _ = make_stock(alpha)
        order = place_order(sku)
    browser = Client(HTTP_HOST=host_of(alpha))
    browser.get(f"/order/{order.number}/?t={order.access_token}")
    with caplog.at_level(logging.WARNING, logger="platform_core.storefront.views"):
        page = browser.post(f"/order/{order.number}/pay/", {"payment": "stripe"}, follow=True)
    html = page.content.decode()
    assert "This payment method is not available right now. Choose another one or try again later." in html
    assert "shop console" not in html and "credentials" not in html
    assert any("payment start failed: provider=stripe" in r.getMessage() and "check the Stripe settings"
               in r.getMessage() for r in caplog.records)
    assert "W" * 40 not in caplog.text
    from django.conf import settings

    zh = Client(HTTP_HOST=host_of(alpha))
    zh.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    zh.get(f"/order/{order.number}/?t={order.access_token}")
    page = zh.post(f"/order/{order.number}/pay/", {"payment": "stripe"}, follow=True)
    assert "该支付方式暂不可用" in page.content.decode()
