"""The sandbox gateway on its own, over real HTTP: auth, validation, idempotency, the
pay page, signed webhooks with retries, refunds, settlements, replay."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from sandbox_gateway import serve_in_thread, webhook_secret_for
from tests.payments.conftest import new_api_key


class Receiver:
    """A webhook endpoint that records what it gets and answers ``statuses`` in turn."""

    def __init__(self, statuses=(200,)):
        self.statuses = list(statuses)
        self.received: list[tuple[dict, bytes]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    receiver.received.append((dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 10) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout), \
                f"expected {count} webhooks, got {len(self.received)}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gw():
    server, base = serve_in_thread(webhook_timeout=2.0, retry_delays=(0.1, 0.2))
    yield base
    server.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


KEY = "sk_sandbox_" + "A1b2C3d4E5f6G7h8"


def auth(key=KEY, **extra):
    return {"Authorization": f"Bearer {key}", **extra}


def create(base, key=KEY, *, idempotency_key=None, as_json=True, **fields):
    params = {"amount": 1234, "currency": "CNY", "reference": "42", "notify_url": "http://127.0.0.1:9/none",
              "return_url": "http://shop.example/return?x=1", **fields}
    headers = auth(key, **({"Idempotency-Key": idempotency_key} if idempotency_key else {}))
    if as_json:
        return requests.post(f"{base}/v1/payments", json=params, headers=headers, timeout=10)
    return requests.post(f"{base}/v1/payments", data=params, headers=headers, timeout=10)


# --- auth ------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"},
                                     {"Authorization": "Bearer sk_sandbox_short"}, {"Authorization": "Bearer "}])
def test_missing_or_malformed_api_key_is_401(gw, headers):
    response = requests.post(f"{gw}/v1/payments", json={"amount": 1}, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_strict_gateway_accepts_only_registered_keys():
    server, base = serve_in_thread(auto_register=False)
    try:
        server.app.add_merchant(KEY)
        assert create(base, KEY).status_code == 200
        assert create(base, new_api_key()).status_code == 401
    finally:
        server.stop()


def test_merchants_see_only_their_own_payments(gw):
    payment = create(gw).json()
    other = new_api_key()
    assert requests.get(f"{gw}/v1/payments/{payment['id']}", headers=auth(other), timeout=10).status_code == 404
    assert requests.get(f"{gw}/v1/payments/{payment['id']}", headers=auth(), timeout=10).json()["id"] == payment["id"]
    # the same Idempotency-Key of another merchant is another payment
    first = create(gw, idempotency_key="same").json()
    second = create(gw, other, idempotency_key="same").json()
    assert first["id"] != second["id"]


# --- creating payments -------------------------------------------------------------------

def test_create_payment_answers_like_the_wire_format(gw):
    response = create(gw, as_json=False)
    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"pay_[0-9a-f]{24}", body["id"])
    assert body["status"] == "pending" and body["amount"] == 1234 and body["currency"] == "CNY"
    assert body["reference"] == "42"
    assert body["pay_url"] == f"{gw}/pay/{body['id']}"


def test_a_created_payment_answers_as_it_is_stored(gw):
    """The create answer is made from the values written, not read back: it must be what
    reading the payment gives."""
    created = create(gw, as_json=False, description="Order 7 + 1 = 8 %", return_url="https://shop.test/o?a=1&b=%20")
    assert created.status_code == 200
    stored = requests.get(f"{gw}/v1/payments/{created.json()['id']}", headers=auth(), timeout=10)
    assert stored.status_code == 200 and created.json() == stored.json()
    assert stored.json()["description"] == "Order 7 + 1 = 8 %"
    assert stored.json()["return_url"] == "https://shop.test/o?a=1&b=%20"
    assert stored.json()["amount_refunded"] == 0 and stored.json()["succeeded_at"] is None


@pytest.mark.parametrize("fields, param", [
    ({"amount": 0}, "amount"),
    ({"amount": -5}, "amount"),
    ({"amount": 12.5}, "amount"),
    ({"amount": "12.50"}, "amount"),
    ({"amount": True}, "amount"),
    ({"amount": 10**13}, "amount"),
    ({"amount": None}, "amount"),
    ({"currency": "CN"}, "currency"),
    ({"currency": "12A"}, "currency"),
    ({"reference": ""}, "reference"),
    ({"reference": "x" * 201}, "reference"),
    ({"reference": "a\nb"}, "reference"),  # control characters, anywhere in the text
    ({"description": "Order\x00 1"}, "description"),
    ({"description": "tab\there"}, "description"),
    ({"notify_url": "ftp://example.com/x"}, "notify_url"),
    ({"notify_url": "not a url"}, "notify_url"),
    ({"return_url": "javascript:alert(1)"}, "return_url"),
    ({"colour": "blue"}, "colour"),
])
def test_invalid_payment_parameters_are_400_with_a_message(gw, fields, param):
    response = create(gw, **fields)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["message"]


def test_malformed_bodies_are_400(gw):
    for body, content_type in ((b"{not json", "application/json"), (b"[1, 2]", "application/json"),
                               (b"amount=1&amount=2", "application/x-www-form-urlencoded")):
        response = requests.post(f"{gw}/v1/payments", data=body, headers={**auth(), "Content-Type": content_type},
                                 timeout=10)
        assert response.status_code == 400, body
    too_big = requests.post(f"{gw}/v1/payments", data=b"x" * 70_000, headers=auth(), timeout=10)
    assert too_big.status_code == 413


@pytest.mark.parametrize("text", [
    "a=1", "a=", "a=1&b=2", "a=x%20y+z", "n%61me=v", "url=https%3A%2F%2Fshop.test%2Fo%3Fa%3D1%26b%3D2",
    "a=%ZZ&b=%e4%b8%ad", "a=%ff", "a=1=2", "+=+", "%3D=%26", "a=%", "a=caf\u00e9",
])
def test_form_fields_are_read_as_the_standard_library_reads_them(text):
    from urllib.parse import parse_qsl

    from sandbox_gateway.app import form_pairs

    assert form_pairs(text) == parse_qsl(text, keep_blank_values=True, strict_parsing=True)


@given(st.text(alphabet="ab=&%+2 0FfZ\u00e9\u4e2d", min_size=1, max_size=30))
def test_any_form_body_is_read_or_refused_as_the_standard_library_does(text):
    from urllib.parse import parse_qsl

    from sandbox_gateway.app import form_pairs

    try:
        expected = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        with pytest.raises(ValueError):
            form_pairs(text)
    else:
        assert form_pairs(text) == expected


@pytest.mark.parametrize("text", ["a", "a=1&", "&a=1", "a=1&&b=2", "a=1&b"])
def test_a_form_field_without_a_value_is_refused_as_the_standard_library_refuses_it(text):
    from urllib.parse import parse_qsl

    from sandbox_gateway.app import form_pairs

    with pytest.raises(ValueError):
        parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    with pytest.raises(ValueError):
        form_pairs(text)


def test_idempotency_key_same_body_same_payment_other_body_409(gw):
    first = create(gw, idempotency_key="order-1")
    again = create(gw, idempotency_key="order-1", as_json=False)  # same parameters, form-encoded this time
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    conflict = create(gw, idempotency_key="order-1", amount=9999)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["type"] == "idempotency_error"
    assert create(gw, idempotency_key="order-2").json()["id"] != first.json()["id"]


def test_parallel_requests_with_one_idempotency_key_create_one_payment(gw):
    ids, barrier = [], threading.Barrier(20)

    def go():
        barrier.wait()
        ids.append(create(gw, idempotency_key="burst").json()["id"])

    threads = [threading.Thread(target=go) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 20 and len(set(ids)) == 1


# --- pay page and webhooks ---------------------------------------------------------------

def test_pay_page_shows_reference_amount_and_buttons(gw):
    payment = create(gw, amount=123456, reference="ORDER<7>").json()
    page = requests.get(payment["pay_url"], timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.text
    assert "1,234.56 CNY" in html and "ORDER&lt;7&gt;" in html and "ORDER<7>" not in html
    assert 'id="pay"' in html and 'id="fail"' in html and 'name="viewport"' in html
    assert f'action="/pay/{payment["id"]}/pay"' in html and f'action="/pay/{payment["id"]}/fail"' in html
    assert "http" not in html.split("<body>")[1].replace(payment["return_url"], "")  # no external assets
    assert requests.get(f"{gw}/pay/pay_{'0' * 24}", timeout=10).status_code == 404


def _verify(headers: dict, body: bytes, key: str = KEY) -> dict:
    header = headers["Sandbox-Signature"]
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert match, header
    timestamp, signature = match.groups()
    assert abs(int(timestamp) - time.time()) < 60
    secret = webhook_secret_for(key)
    assert secret.startswith("whsec_") and secret != key
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, signature)
    return json.loads(body)


def test_pay_sends_a_signed_webhook_then_redirects_to_the_shop(gw, receiver):
    payment = create(gw, notify_url=receiver.url).json()
    response = requests.post(f"{payment['pay_url']}/pay", allow_redirects=False, timeout=10)
    assert response.status_code == 303 and response.headers["Location"] == "http://shop.example/return?x=1"
    assert len(receiver.received) == 1  # delivered before the redirect
    headers, body = receiver.received[0]
    assert headers["Content-Type"] == "application/json"
    event = _verify(headers, body)
    assert re.fullmatch(r"evt_[0-9a-f]{24}", event["id"]) and event["type"] == "payment.succeeded"
    assert isinstance(event["created"], int)
    obj = event["data"]["object"]
    assert obj["id"] == payment["id"] and obj["status"] == "succeeded" and obj["reference"] == "42"
    assert obj["amount"] == 1234 and obj["currency"] == "CNY"
    # a second click changes nothing and sends nothing
    again = requests.post(f"{payment['pay_url']}/pay", allow_redirects=False, timeout=10)
    assert again.status_code == 303 and len(receiver.received) == 1
    assert requests.post(f"{payment['pay_url']}/fail", allow_redirects=False, timeout=10).status_code == 303
    assert requests.get(f"{gw}/v1/payments/{payment['id']}", headers=auth(), timeout=10).json()["status"] == "succeeded"
    assert 'id="status"' in requests.get(payment["pay_url"], timeout=10).text


def test_fail_sends_payment_failed(gw, receiver):
    payment = create(gw, notify_url=receiver.url).json()
    assert requests.post(f"{payment['pay_url']}/fail", allow_redirects=False, timeout=10).status_code == 303
    event = _verify(*receiver.received[0])
    assert event["type"] == "payment.failed" and event["data"]["object"]["status"] == "failed"


def test_failed_deliveries_are_retried_with_a_fresh_signature_and_the_same_event():
    receiver = Receiver(statuses=(500, 503, 200))
    server, base = serve_in_thread(webhook_timeout=2.0, retry_delays=(0.3, 0.3, 0.3))
    try:
        payment = create(base, notify_url=receiver.url).json()
        assert requests.post(f"{payment['pay_url']}/pay", allow_redirects=False, timeout=10).status_code == 303
        receiver.wait_for(3)
        bodies = {body for _, body in receiver.received}
        assert len(bodies) == 1  # byte-identical body, so the shop de-duplicates on the id
        for headers, body in receiver.received:
            _verify(headers, body)
        time.sleep(0.5)
        assert len(receiver.received) == 3  # stops once delivered
        event_id = json.loads(receiver.received[0][1])["id"]
        row = server.app.store.event(event_id)
        assert row["attempts"] == 3 and row["delivered_at"] is not None
    finally:
        server.stop()
        receiver.close()


def test_replay_resends_a_stored_event(gw, receiver):
    payment = create(gw, notify_url=receiver.url).json()
    requests.post(f"{payment['pay_url']}/pay", allow_redirects=False, timeout=10)
    event_id = json.loads(receiver.received[0][1])["id"]
    answer = requests.post(f"{gw}/v1/test/replay/{event_id}", headers=auth(), timeout=10).json()
    assert answer == {"id": event_id, "delivered": True, "status": 200, "error": ""}
    assert receiver.received[1][1] == receiver.received[0][1]
    assert requests.post(f"{gw}/v1/test/replay/{event_id}", headers=auth(new_api_key()), timeout=10).status_code == 404


# --- refunds and settlements -------------------------------------------------------------

def test_refunds_partial_then_full_with_idempotency_and_webhooks(gw, receiver):
    payment = create(gw, notify_url=receiver.url).json()
    refunds = f"{gw}/v1/payments/{payment['id']}/refunds"
    assert requests.post(refunds, data={"amount": 100}, headers=auth(), timeout=10).status_code == 400  # pending
    requests.post(f"{payment['pay_url']}/pay", allow_redirects=False, timeout=10)
    first = requests.post(refunds, data={"amount": 234}, headers=auth(**{"Idempotency-Key": "r1"}), timeout=10)
    assert first.status_code == 200
    refund = first.json()
    assert re.fullmatch(r"re_[0-9a-f]{24}", refund["id"]) and refund["status"] == "succeeded"
    assert refund["amount"] == 234 and refund["payment"] == payment["id"] and refund["reference"] == "42"
    replay = requests.post(refunds, data={"amount": 234}, headers=auth(**{"Idempotency-Key": "r1"}), timeout=10)
    assert replay.json() == refund
    too_much = requests.post(refunds, data={"amount": 1001}, headers=auth(), timeout=10)
    assert too_much.status_code == 400 and "1000" in too_much.json()["error"]["message"]
    rest = requests.post(refunds, headers=auth(), timeout=10).json()  # no amount: everything left
    assert rest["amount"] == 1000
    assert requests.post(refunds, data={"amount": 1}, headers=auth(), timeout=10).status_code == 400
    state = requests.get(f"{gw}/v1/payments/{payment['id']}", headers=auth(), timeout=10).json()
    assert state["amount_refunded"] == 1234
    receiver.wait_for(3)  # payment.succeeded + two refund.succeeded, sent in the background
    kinds = sorted(_verify(*item)["type"] for item in receiver.received)
    assert kinds == ["payment.succeeded", "refund.succeeded", "refund.succeeded"]


def test_settlements_list_the_day(gw, receiver):
    payment = create(gw, notify_url=receiver.url).json()
    create(gw)  # pending: not settled
    requests.post(f"{payment['pay_url']}/pay", allow_redirects=False, timeout=10)
    requests.post(f"{gw}/v1/payments/{payment['id']}/refunds", data={"amount": 200}, headers=auth(), timeout=10)
    today = datetime.now(timezone.utc).date().isoformat()
    report = requests.get(f"{gw}/v1/settlements", params={"date": today}, headers=auth(), timeout=10).json()
    assert [(item["type"], item["amount"]) for item in report["data"]] == [("payment", 1234), ("refund", 200)]
    assert report["totals"] == {"CNY": {"payments": 1234, "refunds": 200, "net": 1034}}
    other_day = requests.get(f"{gw}/v1/settlements", params={"date": "2001-01-01"}, headers=auth(), timeout=10)
    assert other_day.json()["data"] == []
    for bad in ("", "2024-13-01", "yesterday"):
        assert requests.get(f"{gw}/v1/settlements", params={"date": bad}, headers=auth(),
                            timeout=10).status_code == 400


def test_wrong_method_and_unknown_path(gw):
    assert requests.get(f"{gw}/v1/payments", headers=auth(), timeout=10).status_code == 405
    assert requests.get(f"{gw}/v2/nothing", headers=auth(), timeout=10).status_code == 404
    assert requests.get(f"{gw}/healthz", timeout=10).json()["ok"] is True
