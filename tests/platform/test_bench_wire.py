"""The benchmarks' load generator (tests/bench/_buyers.py) speaks real HTTP: answers sized,
chunked or closed, read however they arrive; buyers buy until the stock is gone, sign
their webhooks as the gateway does, and report a server that hangs up as an error."""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading

import pytest

from plugins.payments.sandbox.plugin import SIGNATURE_HEADER, webhook_secret_for
from tests.bench._buyers import BuyerLoop, http_request, parse_answer
from tests.raw_http import accepted, read_request

SIZED = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"ok\": true}"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;x=1\r\npedia!\r\n0\r\n\r\n"
CLOSING = b"HTTP/1.1 409 Conflict\r\nconnection: close\r\ncontent-length: 4\r\n\r\nsold"
TO_THE_END = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"


def test_a_request_is_one_http11_message():
    request = http_request("POST", "/api/v1/orders/", "flash.kameng.test", {"Content-Type": "application/json"},
                           b'{"a": 1}')
    assert request == (b"POST /api/v1/orders/ HTTP/1.1\r\nHost: flash.kameng.test\r\nContent-Length: 8\r\n"
                       b"Content-Type: application/json\r\n\r\n{\"a\": 1}")


@pytest.mark.parametrize(("answer", "expected"), [
    (SIZED, (201, b'{"ok": true}', False)),
    (CHUNKED, (200, b"Wikipedia!", False)),
    (CLOSING, (409, b"sold", True)),
])
def test_an_answer_is_whole_only_once_every_byte_came(answer, expected):
    for cut in range(len(answer)):  # however the bytes arrive, nothing is taken before the end
        assert parse_answer(answer[:cut]) is None, cut
    status, body, rest, closes = parse_answer(answer + b"HTTP/1.1 next")
    assert (status, body, closes) == expected and rest == b"HTTP/1.1 next"


def test_an_answer_without_a_size_runs_to_the_close():
    assert parse_answer(TO_THE_END) is None
    assert parse_answer(TO_THE_END, at_end=True) == (200, b"all of it", b"", True)


class FakeShop:
    """Sells ``stock`` orders with the sandbox payment, checks each webhook's signature,
    answers as ``kameng web`` does (one answer per connection, Connection: close)."""

    def __init__(self, stock: int, api_key: str):
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.stock, self.secret = stock, webhook_secret_for(api_key).encode()
        self.orders, self.hooks, self.bad_signatures = [], [], 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def serve(self):
        for conn in accepted(self.listener):
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn):
        with conn:
            request = read_request(conn)
            if request is None:
                return
            head, body, _ = request
            line = head.split(b"\r\n")[0]
            if line.startswith(b"POST /api/v1/orders/ "):
                with self.lock:
                    self.orders.append(json.loads(body)["contact"])
                    if self.stock <= 0:
                        conn.sendall(CLOSING)
                        return
                    self.stock -= 1
                    number = len(self.orders)
                payment = {"payment_id": number, "amount": 100, "currency": "CNY", "external_id": f"pay_{number}"}
                answer = json.dumps({"number": str(number), "payment": payment}).encode()
            else:
                headers = dict(h.split(b": ", 1) for h in head.split(b"\r\n")[1:])
                timestamp, signature = (part.split(b"=", 1)[1]
                                        for part in headers[SIGNATURE_HEADER.encode()].split(b","))
                expected = hmac.new(self.secret, timestamp + b"." + body, hashlib.sha256).hexdigest().encode()
                with self.lock:
                    self.hooks.append(json.loads(body))
                    self.bad_signatures += signature != expected
                answer = b"ok"
            conn.sendall(b"HTTP/1.1 %d OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (201 if answer != b"ok" else 200, len(answer), answer))


def test_buyers_buy_until_the_stock_is_gone_each_order_paid_by_a_signed_webhook():
    shop = FakeShop(stock=7, api_key="sk_sandbox_wire0000000000000000")
    loop = BuyerLoop(shop.base, "tok", 42, "sk_sandbox_wire0000000000000000", shop_host="flash.kameng.test")
    outcomes = loop.run([f"b{n}@example.com" for n in range(3)], repeat=True)
    assert (outcomes.paid, outcomes.refused, outcomes.errors) == (7, 3, 0), outcomes.first_error
    assert len(shop.orders) == 10 and set(shop.orders) == {"b0@example.com", "b1@example.com", "b2@example.com"}
    assert shop.bad_signatures == 0
    # one webhook per paid order, naming that order's payment
    assert sorted(int(hook["data"]["object"]["reference"]) for hook in shop.hooks) == list(range(1, 8))
    assert all(hook["type"] == "payment.succeeded" for hook in shop.hooks) and len(outcomes.seconds) == 7


def test_a_budget_stops_the_buyers_and_once_buys_once():
    shop = FakeShop(stock=100, api_key="sk_sandbox_wire0000000000000000")
    loop = BuyerLoop(shop.base, "tok", 42, "sk_sandbox_wire0000000000000000", shop_host="flash.kameng.test")
    assert loop.run([f"b{n}@example.com" for n in range(4)], repeat=True, budget=9).paid == 9
    assert loop.run([f"c{n}@example.com" for n in range(4)]).paid == 4  # each once
    assert shop.stock == 100 - 13


def test_a_server_that_hangs_up_mid_answer_is_an_error():
    listener = socket.create_server(("127.0.0.1", 0))

    def half_answer():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        conn.close()

    threading.Thread(target=half_answer, daemon=True).start()
    loop = BuyerLoop(f"http://127.0.0.1:{listener.getsockname()[1]}", "tok", 1, "sk_sandbox_wire0000000000000000",
                     shop_host="h")
    outcomes = loop.run(["a@example.com"])
    listener.close()
    assert outcomes.errors == 1 and "mid-answer" in outcomes.first_error and outcomes.paid == 0


def test_a_server_that_is_not_there_is_an_error_not_a_hang():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there any more
    loop = BuyerLoop(f"http://127.0.0.1:{port}", "tok", 1, "sk_sandbox_wire0000000000000000", shop_host="h")
    outcomes = loop.run(["a@example.com", "b@example.com"], timeout=10)
    assert (outcomes.errors, outcomes.paid) == (2, 0) and "connect" in outcomes.first_error
