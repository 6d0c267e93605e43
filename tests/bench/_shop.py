"""A benchmark shop behind a real gunicorn, with the sandbox payment plugin enabled,
and a client that sends correctly signed sandbox webhooks — the path real payments take."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

from tests.bench._harness import child_env, progress

API_KEY = "sk_sandbox_benchmark000000000000"
HOST_DOMAIN = "kameng.test"  # PLATFORM_DOMAIN of the test settings


def create_shop(slug: str = "bench"):
    """A live shop with the sandbox provider enabled and a merchant API token."""
    from django_tenants.utils import tenant_context
    from rest_framework.authtoken.models import Token

    from plugins.services import plugin_configure
    from tenants.models import Merchant
    from tenants.services import shop_create

    from billing.services import subscription_make_complimentary

    owner = Merchant.objects.create_user(f"{slug}@bench.kameng.test", None)
    shop = shop_create(slug=slug, name="Bench", owner=owner, language="en", sample_catalog=False).shop
    # a shop that runs flash sales is on the plan without an order limit
    subscription_make_complimentary(shop=shop, plan_code="business", reason="Benchmark shop")
    with tenant_context(shop):
        plugin_configure(shop=shop, slug="sandbox", data={"api_key": API_KEY, "gateway_url": "http://127.0.0.1:9"},
                         enable=True)
    token = Token.objects.create(user=owner).key
    return shop, token


def product_with_stock(shop, name: str, keys_per_sku: dict[str, int]) -> dict:
    """One card-key product in ``shop`` with a SKU per entry of ``keys_per_sku`` (SKU name ->
    how many keys, prefixed with the name), priced 1.00; returns the SKUs by name."""
    from django_tenants.utils import tenant_context

    from platform_core.catalog.models import SKU, Product

    with tenant_context(shop):
        product = Product.objects.create(name=name, max_quantity=10)
        skus = {}
        for sku_name, keys in keys_per_sku.items():
            skus[sku_name] = SKU.objects.create(product=product, name=sku_name, price=100)
            add_plain_keys(skus[sku_name].pk, keys, sku_name.upper())
    progress("keys ready")
    return skus


def add_plain_keys(sku_id: int, count: int, prefix: str) -> None:
    """Many keys fast: encrypted like real imports, inserted in large batches."""
    from django.db import connection

    from platform_core.inventory.models import CardKey
    from platform_core.inventory.stock import KeyCipher, recount

    from platform_core.catalog.models import SKU

    sku = SKU.objects.get(pk=sku_id)
    cipher = KeyCipher(connection.tenant)
    batch = []
    for n in range(count):
        secret = f"{prefix}-{n:08d}"
        batch.append(CardKey(sku=sku, product_id_copy=sku.product_id, secret=cipher.encrypt(secret),
                             fingerprint=cipher.fingerprint(secret)))
        if len(batch) == 5000:
            CardKey.objects.bulk_create(batch)
            batch = []
    CardKey.objects.bulk_create(batch)
    recount(sku_id)


def signed_webhook(event: dict) -> tuple[bytes, dict[str, str]]:
    from plugins.payments.sandbox.plugin import SIGNATURE_HEADER, webhook_secret_for

    body = json.dumps(event, separators=(",", ":")).encode()
    timestamp = int(time.time())
    signature = hmac.new(webhook_secret_for(API_KEY).encode(), f"{timestamp}.".encode() + body,
                         hashlib.sha256).hexdigest()
    return body, {SIGNATURE_HEADER: f"t={timestamp},v1={signature}", "Content-Type": "application/json"}


def payment_succeeded_event(payment_id: int, amount: int, currency: str, n: int, external_id: str = "") -> dict:
    return {"id": f"evt_bench{payment_id}x{n}", "type": "payment.succeeded", "created": int(time.time()),
            "data": {"object": {"id": external_id or f"pay_bench{payment_id}", "object": "payment",
                                "status": "succeeded",
                                "amount": amount, "currency": currency, "reference": str(payment_id)}}}


class HttpWire:
    """One keep-alive HTTP/1.1 connection that sends prepared request bytes and reads
    the status and body of each answer (Content-Length or chunked). The load generator
    shares the machine's two cores with the shop: ``http.client`` spent ~0.3 ms of CPU
    per call parsing headers with the e-mail parser, ``requests`` ~1.5 ms more."""

    def __init__(self, host: str, port: int, timeout: float = 60):
        self.address, self.timeout = (host, port), timeout
        self.sock = None
        self.buffer = b""

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-answer")
        self.buffer += chunk

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._more()
        taken, self.buffer = self.buffer[:count], self.buffer[count:]
        return taken

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._more()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self._connect()
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while size := int(self._line().split(b";")[0], 16):
                parts.append(self._take(size))
                self._take(2)
            while self._line():  # trailers, then the blank line
                pass
            body = b"".join(parts)
        else:
            body = self._take(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            self.sock.close()
            self.sock = None
        return status, body


def http_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class PaidOrderClient:
    """One buyer's connection: ``POST /api/v1/orders/`` with the sandbox payment, then the
    gateway's signed ``payment.succeeded`` webhook for it, as after the Pay button."""

    def __init__(self, base: str, token: str, sku_id: int, contact: str):
        from urllib.parse import urlsplit

        address = urlsplit(base)
        self.wire = HttpWire(address.hostname, address.port)
        self.host = f"flash.{HOST_DOMAIN}"
        order_body = json.dumps({"lines": [{"sku_id": sku_id, "quantity": 1}], "contact": contact,
                                 "query_password": "1234", "payment": {"provider": "sandbox"}}).encode()
        self.order_request = http_request("POST", "/api/v1/orders/", self.host, {
            "Authorization": f"Token {token}", "Content-Type": "application/json"}, order_body)

    def buy(self) -> tuple[str, str]:
        """("paid" | "refused" | "error", what went wrong)."""
        status, answer = self.wire.exchange(self.order_request)
        if status == 409:
            return "refused", ""
        payment = json.loads(answer).get("payment") if status == 201 else None
        if not payment:
            return "error", f"HTTP {status} {answer[:300]!r}"
        body, hook_headers = signed_webhook(payment_succeeded_event(
            payment["payment_id"], payment["amount"], payment["currency"], 0, payment["external_id"]))
        status, answer = self.wire.exchange(http_request("POST", "/hooks/payments/sandbox/", self.host,
                                                         hook_headers, body))
        # paid only once the shop confirmed the delivery
        return ("paid", "") if status == 200 else ("error", f"webhook HTTP {status} {answer[:300]!r}")


@contextmanager
def sandbox_gateway(shop):
    """The sandbox gateway as a process of its own, the shop's sandbox plugin pointed at it."""
    from django_tenants.utils import tenant_context

    from platform_core import devstack as ds
    from plugins.services import plugin_configure

    port = ds.free_port()
    gateway = subprocess.Popen([sys.executable, "-m", "sandbox_gateway", "--port", str(port),
                                "--db", os.path.join(os.environ["KAMENG_STATE_DIR"], "gateway.sqlite3")],
                               env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with tenant_context(shop):
            plugin_configure(shop=shop, slug="sandbox", data={"api_key": API_KEY,
                                                              "gateway_url": f"http://127.0.0.1:{port}"})
        time.sleep(1)
        yield gateway
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)


class ServerURL(str):
    """The web server's base URL, carrying the pid of its master process."""

    pid: int


@contextmanager
def web_server(port: int, workers: int = 4, code_dir: str | None = None, environment: dict | None = None):
    """``kameng web`` as it runs in production; ``code_dir``: serve the code of that checkout
    (another revision's worktree) instead of this one, on the same database;
    ``environment``: variables for it alone (``KAMENG_WEB_SERVER=gunicorn``, …)."""
    env = child_env(PORT=str(port), KAMENG_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(workers),
                    LOG_LEVEL="WARNING", **({"PYTHONPATH": code_dir} if code_dir else {}), **(environment or {}))
    log_path = os.path.join(os.environ["KAMENG_STATE_DIR"], "web.log")
    progress(f"web server log: {log_path}")
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the server
    # gunicorn puts its working directory first on sys.path
    process = subprocess.Popen([sys.executable, "-m", "platform_core.cli", "web"], env=env, cwd=code_dir,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("benchmark web server did not start") from None
                time.sleep(0.2)
        progress(f"{env.get('KAMENG_WEB_SERVER') or 'uwsgi'} with {workers} worker processes on port {port}")
        url = ServerURL(f"http://127.0.0.1:{port}")
        url.pid = process.pid
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
        with open(log_path, errors="replace") as written:
            text = written.read()
        if "Traceback" in text:  # the temp dir goes with the benchmark: show why requests failed
            first = text.index("Traceback")
            print(f"web server errors (first of {text.count('Traceback')}):\n{text[first:first + 4000]}",
                  file=sys.stderr)
