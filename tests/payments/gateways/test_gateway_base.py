"""The adapter base every real gateway uses: amounts, safe retries, quiet logs, typed
errors; and the fake-gateway server the gateway tests stand on."""
from __future__ import annotations

import logging
import socket

import pytest
import requests

from plugins.payment import PaymentDeclined, PaymentError, PaymentMisconfigured, PaymentRetryable
from plugins.payments.gateway import (
    REDACTED,
    GatewayClient,
    GatewayResponse,
    from_decimal_string,
    from_gateway_minor,
    redact,
    redact_headers,
    to_decimal_string,
    to_gateway_minor,
)
from tests.fakegateways import FakeGateway, Reply, route, send_notification

SECRET = "sk_test_" + "S3cr3tV4lu3" * 3


class Echo(FakeGateway):
    name = "echo"

    def __init__(self):
        super().__init__()
        self.charges: dict[str, dict] = {}

    @route("GET", r"/v1/things/(?P<thing_id>[a-z0-9]+)")
    def show(self, request, thing_id):
        return {"id": thing_id}

    @route("POST", r"/v1/charges")
    def charge(self, request):
        key = request.headers.get("Idempotency-Key") or f"anon-{len(self.requests)}"
        self.charges.setdefault(key, {"id": f"ch_{len(self.charges) + 1}", **request.form()})
        return self.charges[key]

    @route("POST", r"/v1/boom")
    def boom(self, request):
        raise RuntimeError("handler bug")


@pytest.fixture
def echo():
    with Echo() as fake:
        yield fake


@pytest.fixture
def fast(settings):
    settings.KAMENG_PAYMENT_HTTP_BACKOFF = 0.01
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (1.0, 1.0)
    return settings


def client_for(fake) -> GatewayClient:
    return GatewayClient(slug="echo", name="Echo Pay", base_url=fake.base_url, secrets=[SECRET])


# --- amounts ---------------------------------------------------------------------------

@pytest.mark.parametrize("minor, currency, text", [
    (1234, "CNY", "12.34"), (5, "USD", "0.05"), (0, "EUR", "0.00"), (100000, "CNY", "1000.00"),
    (1234, "JPY", "1234"), (50000, "KRW", "50000"), (1234, "KWD", "1.234"),
])
def test_minor_units_to_decimal_strings_and_back(minor, currency, text):
    assert to_decimal_string(minor, currency) == text
    assert from_decimal_string(text, currency) == minor


@pytest.mark.parametrize("text, currency", [
    ("12.345", "CNY"), ("12.5", "JPY"), ("-1.00", "CNY"), ("+1.00", "CNY"), ("1e3", "CNY"), ("NaN", "CNY"),
    ("", "CNY"), (" ", "USD"), ("1,000.00", "USD"), (True, "CNY"), (None, "CNY"),
])
def test_decimal_strings_with_too_many_decimals_or_odd_shapes_are_refused(text, currency):
    with pytest.raises(ValueError):
        from_decimal_string(text, currency)


@pytest.mark.parametrize("bad", [-1, 1.5, "12", True])
def test_only_non_negative_integers_are_amounts(bad):
    with pytest.raises(ValueError):
        to_decimal_string(bad, "CNY")
    with pytest.raises(ValueError):
        to_gateway_minor(bad, "CNY")


def test_minor_unit_gateways_take_zero_decimal_currencies_as_they_are():
    assert to_gateway_minor(1234, "JPY") == 1234 and to_gateway_minor(1234, "CNY") == 1234
    assert from_gateway_minor(1234, "KRW") == 1234
    # a gateway that counts ISK in hundredths while we count whole krónur
    assert to_gateway_minor(500, "ISK", {"ISK": 2}) == 50000
    assert from_gateway_minor(50000, "ISK", {"ISK": 2}) == 500
    with pytest.raises(ValueError):
        from_gateway_minor(50050, "ISK", {"ISK": 2})
    # a gateway that counts a three-decimal currency in hundredths
    with pytest.raises(ValueError):
        to_gateway_minor(1235, "KWD", {"KWD": 2})
    assert to_gateway_minor(1230, "KWD", {"KWD": 2}) == 123


# --- redaction -------------------------------------------------------------------------

def test_redaction_of_values_and_headers():
    assert redact(f"key={SECRET}&x=1", [SECRET, None, ""]) == f"key={REDACTED}&x=1"
    assert redact("short ab", ["ab"]) == "short ab"  # too short to be a secret, too common to blank
    headers = redact_headers({"Authorization": "Bearer x", "Stripe-Signature": "t=1", "Idempotency-Key": "k",
                              "Content-Type": "application/json", "PayPal-Auth-Algo": "SHA256withRSA"})
    assert headers == {"Authorization": REDACTED, "Stripe-Signature": REDACTED, "Idempotency-Key": REDACTED,
                       "Content-Type": "application/json", "PayPal-Auth-Algo": "SHA256withRSA"}


# --- the client ------------------------------------------------------------------------

def test_a_query_is_retried_on_5xx_and_429_with_backoff(echo, fast):
    echo.fail("GET", r"/v1/things/.*", 503)
    echo.fail("GET", r"/v1/things/.*", 429)
    response = client_for(echo).request("GET", "/v1/things/abc")
    assert response.status == 200 and response.json() == {"id": "abc"} and response.attempts == 3
    assert len(echo.received("GET")) == 3


def test_a_query_gives_up_after_three_attempts_with_a_retryable_error(echo, fast):
    echo.fail("GET", r"/v1/things/.*", 502, times=5)
    client = client_for(echo)
    response = client.request("GET", "/v1/things/abc")
    assert response.status == 502 and response.attempts == 3
    error = client.error_for(response)
    assert isinstance(error, PaymentRetryable) and error.retryable and "Try again" in error.message


def test_a_create_without_idempotency_key_is_never_retried(echo, fast):
    echo.fail("POST", r"/v1/charges", 503)
    response = client_for(echo).request("POST", "/v1/charges", data={"amount": 100})
    assert response.status == 503 and response.attempts == 1
    assert len(echo.received("POST")) == 1 and echo.charges == {}


def test_a_create_with_idempotency_key_is_retried_after_a_timeout_with_the_same_key(echo, fast):
    echo.stall("POST", r"/v1/charges", 2.0)  # the charge is made; the answer comes too late
    response = client_for(echo).request("POST", "/v1/charges", data={"amount": 100}, idempotency_key="order-7")
    assert response.status == 200 and response.attempts == 2
    sent = echo.received("POST", r"/v1/charges")
    assert [r.headers["Idempotency-Key"] for r in sent] == ["order-7", "order-7"]
    assert sent[0].body == sent[1].body == b"amount=100"
    assert len(echo.charges) == 1 and response.json()["id"] == "ch_1"


def test_a_timeout_on_a_create_without_key_is_reported_not_repeated(echo, fast):
    echo.stall("POST", r"/v1/charges", 2.0)
    with pytest.raises(PaymentRetryable, match="did not answer in time"):
        client_for(echo).request("POST", "/v1/charges", data={"amount": 100})
    assert len(echo.received("POST")) == 1


def test_an_unreachable_gateway_is_a_plain_retryable_error(fast):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = GatewayClient(slug="echo", name="Echo Pay", base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(PaymentRetryable) as error:
        client.request("GET", "/v1/things/abc")
    assert error.value.message == "Echo Pay is not reachable. Try again in a moment."
    assert isinstance(error.value, PaymentError)


def test_each_attempt_is_logged_without_bodies_queries_or_secrets(echo, fast, caplog):
    echo.fail("GET", r"/v1/things/.*", 500)
    client = client_for(echo)
    with caplog.at_level(logging.DEBUG, logger="kameng.payments.echo"):
        client.request("GET", f"/v1/things/abc?key={SECRET}", headers={"Authorization": f"Bearer {SECRET}"})
        client.request("POST", "/v1/charges", data={"card": SECRET}, idempotency_key="k1",
                       headers={"Authorization": f"Bearer {SECRET}"})
    records = [r for r in caplog.records if r.name == "kameng.payments.echo"]
    assert [(r.http_method, r.http_path, r.http_status, r.attempt) for r in records] == [
        ("GET", "/v1/things/abc", 500, 1), ("GET", "/v1/things/abc", 200, 2), ("POST", "/v1/charges", 200, 1)]
    assert [r.levelname for r in records] == ["WARNING", "INFO", "INFO"]
    assert all(isinstance(r.duration_ms, int) and r.gateway == "echo" for r in records)
    assert records[0].getMessage().startswith("Echo Pay GET /v1/things/abc -> 500 in ")
    assert SECRET not in caplog.text and "k1" not in caplog.text
    # the secret did reach the gateway: the client hid it only from the logs
    assert echo.received("GET")[0].headers["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("status, kind, words", [
    (401, PaymentMisconfigured, "refused the shop's credentials; check the Echo Pay settings"),
    (403, PaymentMisconfigured, "refused the shop's credentials"),
    (402, PaymentDeclined, "Echo Pay declined the payment: card_declined"),
    (429, PaymentRetryable, "Try again in a moment"),
    (500, PaymentRetryable, "had a problem (HTTP 500)"),
    (400, PaymentError, "Echo Pay refused the request: card_declined"),
])
def test_refusals_become_typed_errors_in_plain_words(status, kind, words):
    client = GatewayClient(slug="echo", name="Echo Pay", base_url="http://127.0.0.1:9", secrets=[SECRET])
    error = client.error_for(GatewayResponse(status, {}, b"{}"), "card_declined")
    assert type(error) is kind and words in error.message
    assert client.error_for(GatewayResponse(400, {}, b""), f"bad key {SECRET}").message.endswith(f"bad key {REDACTED}")


# --- the fake server itself ------------------------------------------------------------

def test_the_fake_records_requests_byte_for_byte_and_routes_by_method_and_path(echo):
    response = requests.post(f"{echo.base_url}/v1/charges?x=1", data=b"amount=5&currency=cny",
                             headers={"Content-Type": "application/x-www-form-urlencoded", "X-Test": "yes"}, timeout=5)
    assert response.json() == {"id": "ch_1", "amount": "5", "currency": "cny"}
    recorded, = echo.received("POST", r"/v1/charges")
    assert recorded.body == b"amount=5&currency=cny" and recorded.query == {"x": ["1"]}
    assert recorded.headers["x-test"] == "yes" and recorded.form() == {"amount": "5", "currency": "cny"}
    assert requests.get(f"{echo.base_url}/v1/charges", timeout=5).status_code == 404
    assert requests.post(f"{echo.base_url}/v1/boom", timeout=5).status_code == 500
    assert echo.crashes == ["RuntimeError('handler bug')"]


def test_send_notification_is_a_real_post():
    class Sink(FakeGateway):
        name = "sink"

        @route("POST", r"/notify")
        def notify(self, request):
            return Reply(200, "success")

    with Sink() as sink:
        response = send_notification(f"{sink.base_url}/notify", b'{"a": 1}', {"X-Sig": "abc"})
        assert response.text == "success"
        recorded, = sink.received()
        assert recorded.body == b'{"a": 1}' and recorded.headers["X-Sig"] == "abc"


# --- the core: events out of order -----------------------------------------------------

def test_a_refund_event_before_the_payment_success_is_deferred_then_applied(sandbox_shop, gateway, api_key, bridge):
    """Gateways do not keep events in order. A refund that arrives first changes nothing
    and is answered 409 (the gateway sends it again); after the success it is applied."""
    from django.test import Client

    from platform_core.orders.models import Order
    from platform_core.payments.models import Refund, WebhookEvent
    from platform_core.payments.services import payment_start
    from tests.conftest import host_of
    from tests.payments.conftest import WEBHOOK_PATH, event_body, make_stock, place_order, signed_post

    sku, _ = make_stock(sandbox_shop)
    order = place_order(sku, quantity=2)
    payment, action = payment_start(order=order, provider_slug="sandbox", return_url="http://alpha.kameng.test/r/",
                                    notify_url=bridge.url(WEBHOOK_PATH))
    client = Client(HTTP_HOST=host_of(sandbox_shop))
    paid = {"id": payment.external_id, "reference": str(payment.pk), "amount": 2000, "currency": "CNY",
            "status": "succeeded"}
    refunded = {"id": "re_" + "a" * 24, "payment": payment.external_id, "reference": str(payment.pk),
                "amount": 2000, "currency": "CNY"}
    refund_body = event_body("evt_" + "r" * 24, "refund.succeeded", refunded)

    early = signed_post(client, refund_body, api_key)
    assert early.status_code == 409 and b"send it again later" in early.content
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT and order.refunded_amount == 0
    assert not WebhookEvent.objects.exists() and not Refund.objects.exists()

    assert signed_post(client, event_body("evt_" + "p" * 24, "payment.succeeded", paid), api_key).status_code == 200
    again = signed_post(client, refund_body, api_key)
    assert again.status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and order.refunded_amount == 2000
    assert WebhookEvent.objects.get(kind="refund.succeeded").result == "refund_recorded"
    assert signed_post(client, refund_body, api_key).status_code == 200  # a third time: a duplicate
    assert Refund.objects.count() == 1


def test_decimal_gateways_with_their_own_exponents():
    paypal = {"HUF": 0, "TWD": 0}
    assert to_decimal_string(150000, "HUF", paypal) == "1500"
    assert from_decimal_string("1500", "HUF", paypal) == 150000
    assert to_decimal_string(1234, "USD", paypal) == "12.34"
    with pytest.raises(ValueError):
        to_decimal_string(150050, "HUF", paypal)  # 1500.50 forint cannot be sent
    with pytest.raises(ValueError):
        from_decimal_string("1500.5", "HUF", paypal)
    with pytest.raises(ValueError):
        from_decimal_string("-1", "HUF", paypal)


def test_even_at_debug_level_no_logger_sees_a_secret_in_a_query_string(echo, fast, caplog):
    """Some gateways (EPay) take the merchant key in the query: neither our client nor
    the HTTP library underneath may log it, whatever LOG_LEVEL says."""
    with caplog.at_level(logging.DEBUG):
        client_for(echo).request("GET", "/v1/things/abc", params={"key": SECRET})
    assert echo.received("GET")[0].query == {"key": [SECRET]}
    assert any(r.name == "kameng.payments.echo" for r in caplog.records)
    assert SECRET not in caplog.text
