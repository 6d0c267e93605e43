"""The benchmarks' buyers: many concurrent paid orders from one process, each buyer a
small state machine on a non-blocking socket, all driven by one ``selectors`` loop.

The load generator shares the machine's two cores with the shop it measures. Threads
(one per buyer, blocking sockets) cost ~0.6 ms of CPU per paid order in wake-ups and
GIL hand-offs; one loop per process sends the same requests, as many at once, for less.
Each buyer: ``POST /api/v1/orders/`` with the sandbox payment, then the gateway's signed
``payment.succeeded`` webhook for it (as the gateway would after the Pay button); paid
only once the shop answered the webhook with 200."""
from __future__ import annotations

import errno
import json
import selectors
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from plugins.payments.sandbox.wire import parse_answer
from sandbox_gateway.signing import HEADER as SIGNATURE_HEADER
from sandbox_gateway.signing import signature_header, webhook_secret_for
from plugins.payments.sandbox.wire import request_bytes as http_request

HOST_DOMAIN = "kameng.test"  # PLATFORM_DOMAIN of the test settings


def signed_webhook(event: dict, api_key: str) -> tuple[bytes, dict[str, str]]:
    """``event`` signed as the sandbox gateway signs it (its own signing module: stdlib
    only, so the buyer processes import nothing of the shop's while the clock runs)."""
    body = json.dumps(event, separators=(",", ":")).encode()
    return body, {SIGNATURE_HEADER: signature_header(webhook_secret_for(api_key), int(time.time()), body),
                  "Content-Type": "application/json"}


def payment_succeeded_event(payment_id: int, amount: int, currency: str, n: int, external_id: str = "") -> dict:
    return {"id": f"evt_bench{payment_id}x{n}", "type": "payment.succeeded", "created": int(time.time()),
            "data": {"object": {"id": external_id or f"pay_bench{payment_id}", "object": "payment",
                                "status": "succeeded",
                                "amount": amount, "currency": currency, "reference": str(payment_id)}}}


@dataclass
class Outcomes:
    paid: int = 0
    refused: int = 0  # sold out (409)
    errors: int = 0
    first_error: str = ""
    seconds: list[float] = field(default_factory=list)  # per paid order: order sent -> webhook answered

    def error(self, why: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or why


class _Buyer:
    """One buyer's connection and where it is in its purchase."""

    def __init__(self, loop: BuyerLoop, contact: str):
        self.loop, self.contact = loop, contact
        self.sock: socket.socket | None = None
        self.out = b""
        self.received = b""
        self.phase = "order"  # or "hook"
        self.started = 0.0
        self.fresh = True  # the connection is new: its connect may still fail
        body = json.dumps({"lines": [{"sku_id": loop.sku_id, "quantity": 1}], "contact": contact,
                           "query_password": "1234", "payment": {"provider": "sandbox"}}).encode()
        self.order_request = http_request("POST", "/api/v1/orders/", loop.host, {
            "Authorization": f"Token {loop.token}", "Content-Type": "application/json"}, body)

    def begin(self) -> None:
        self.phase, self.started = "order", time.perf_counter()
        self.send(self.order_request)

    def send(self, request: bytes) -> None:
        self.out, self.received = request, b""
        if self.sock is None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setblocking(False)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.fresh = True
            code = self.sock.connect_ex(self.loop.address)
            if code not in (0, errno.EINPROGRESS):
                self.fail(f"connect: {errno.errorcode.get(code, code)}")
                return
            self.loop.selector.register(self.sock, selectors.EVENT_WRITE, self)
        else:
            self.fresh = False
            self.loop.selector.modify(self.sock, selectors.EVENT_WRITE, self)

    def writable(self) -> None:
        if self.fresh and (code := self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)):
            self.fail(f"connect: {errno.errorcode.get(code, code)}")
            return
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(f"send: {exc}")
            return
        self.out = self.out[sent:]
        if not self.out:
            self.loop.selector.modify(self.sock, selectors.EVENT_READ, self)

    def readable(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(f"recv: {exc}")
            return
        self.received += chunk
        answer = parse_answer(self.received, at_end=not chunk)
        if answer is None:
            if not chunk:
                self.fail(f"the server closed the connection mid-answer ({self.received[:120]!r})")
            return
        status, body, _, closes = answer
        if closes or not chunk:
            self.drop_connection()
        self.answered(status, body)

    def answered(self, status: int, body: bytes) -> None:
        loop = self.loop
        if self.phase == "order":
            if status == 409:
                loop.outcomes.refused += 1
                self.finish()
                return
            payment = json.loads(body).get("payment") if status == 201 else None
            if not payment:
                self.fail(f"order: HTTP {status} {body[:300]!r}")
                return
            hook_body, headers = signed_webhook(payment_succeeded_event(
                payment["payment_id"], payment["amount"], payment["currency"], 0, payment["external_id"]),
                loop.api_key)
            self.phase = "hook"
            self.send(http_request("POST", "/hooks/payments/sandbox/", loop.host, headers, hook_body))
            return
        if status != 200:
            self.fail(f"webhook: HTTP {status} {body[:300]!r}")
            return
        loop.outcomes.paid += 1
        loop.outcomes.seconds.append(time.perf_counter() - self.started)
        if loop.wants_more():
            self.begin()
        else:
            self.finish()

    def drop_connection(self) -> None:
        if self.sock is not None:
            try:
                self.loop.selector.unregister(self.sock)
            except KeyError:  # never registered: its connect failed at once
                pass
            self.sock.close()
            self.sock = None

    def fail(self, why: str) -> None:
        self.loop.outcomes.error(why)
        self.finish()

    def finish(self) -> None:
        self.drop_connection()
        self.loop.active -= 1


class BuyerLoop:
    """``buyers`` concurrent buyers of ``sku_id``. ``repeat``: a buyer whose order was paid
    buys again until the stock is gone (or ``budget`` paid orders were made); otherwise
    each buys once."""

    def __init__(self, base: str, token: str, sku_id: int, api_key: str, *, shop_host: str):
        address = urlsplit(base)
        self.address = (address.hostname, address.port)
        self.token, self.sku_id, self.api_key, self.host = token, sku_id, api_key, shop_host
        self.selector = selectors.DefaultSelector()
        self.outcomes = Outcomes()
        self.active = 0
        self.repeat, self.budget = False, None

    def wants_more(self) -> bool:
        if not self.repeat:
            return False
        if self.budget is None:
            return True
        return self.outcomes.paid + self.active - 1 < self.budget

    def run(self, contacts: list[str], *, repeat: bool = False, budget: int | None = None,
            timeout: float = 300) -> Outcomes:
        self.repeat, self.budget, self.outcomes = repeat, budget, Outcomes()
        buyers = [_Buyer(self, contact) for contact in (contacts if budget is None else contacts[:budget])]
        self.active = len(buyers)
        for buyer in buyers:
            buyer.begin()
        deadline = time.monotonic() + timeout
        while self.active > 0:
            events = self.selector.select(timeout=1.0)
            if time.monotonic() > deadline:
                for buyer in buyers:
                    if buyer.sock is not None:
                        buyer.fail("no answer before the deadline")
                break
            for key, mask in events:
                buyer = key.data
                if mask & selectors.EVENT_WRITE:
                    buyer.writable()
                elif mask & selectors.EVENT_READ:
                    buyer.readable()
        return self.outcomes
