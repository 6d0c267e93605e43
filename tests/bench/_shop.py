"""A benchmark shop behind a real gunicorn, with the sandbox payment plugin enabled,
and a client that sends correctly signed sandbox webhooks — the path real payments take."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
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


class ServerURL(str):
    """The web server's base URL, carrying the pid of its master process."""

    pid: int


@contextmanager
def web_server(port: int, workers: int = 4):
    env = child_env(PORT=str(port), KAMENG_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(workers),
                    LOG_LEVEL="WARNING")
    log_path = os.path.join(os.environ["KAMENG_STATE_DIR"], "web.log")
    progress(f"web server log: {log_path}")
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the server
    process = subprocess.Popen([sys.executable, "-m", "platform_core.cli", "web"], env=env,
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
        progress(f"gunicorn with {workers} sync workers on port {port}")
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
