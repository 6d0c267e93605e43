"""A benchmark shop behind a real ``kameng web``, with the sandbox payment plugin
enabled, and its buyers (tests/bench/_buyers.py), who pay with correctly signed sandbox
webhooks — the path real payments take."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

from tests.bench import _buyers
from tests.bench._buyers import HOST_DOMAIN, BuyerLoop, payment_succeeded_event  # noqa: F401 - the benchmarks' imports
from tests.bench._harness import child_env, progress
from tests.raw_http import wait_until_serving

API_KEY = "sk_sandbox_benchmark000000000000"


def buyers_of(base: str, token: str, sku_id: int, shop_slug: str) -> BuyerLoop:
    """The buyers of one SKU of the benchmark shop ``shop_slug`` served at ``base``."""
    return BuyerLoop(base, token, sku_id, API_KEY, shop_host=f"{shop_slug}.{HOST_DOMAIN}")


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
    """``event`` as the sandbox gateway signs it for the benchmark shop's API key."""
    return _buyers.signed_webhook(event, API_KEY)


@contextmanager
def sandbox_gateway(shop):
    """The sandbox gateway as a process of its own, the shop's sandbox plugin pointed at it."""
    from django_tenants.utils import tenant_context

    from platform_core import devstack as ds
    from plugins.services import plugin_configure

    port = ds.free_port()
    gateway = subprocess.Popen([sys.executable, "-m", "sandbox_gateway", "--port", str(port),
                                "--db", os.path.join(os.environ["KAMENG_STATE_DIR"], "gateway.sqlite3")],
                               # its output is discarded: like the web server's, it logs warnings only
                               env=child_env(LOG_LEVEL="WARNING"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
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
    # the server puts its working directory first on sys.path
    process = subprocess.Popen([sys.executable, "-m", "platform_core.cli", "web"], env=env, cwd=code_dir,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if not wait_until_serving(f"http://127.0.0.1:{port}", process, 60):
            raise RuntimeError("benchmark web server did not start")
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
