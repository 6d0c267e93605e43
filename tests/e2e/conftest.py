"""End-to-end fixtures: a real ``kameng web`` (uWSGI) serving the test database, and Chromium."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection, connections

from platform_core import devstack
from tests.raw_http import wait_until_serving

# Playwright's sync API keeps an event loop on this thread; our ORM calls here are plain
# synchronous code that Django would otherwise refuse to run next to it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "1")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


@pytest.fixture(scope="session")
def sandbox_gateway():
    """The bundled sandbox payment gateway on a thread; its webhooks reach *.kameng.test
    shops on this machine."""
    from sandbox_gateway.server import serve_in_thread

    os.environ["SANDBOX_LOOPBACK_DOMAINS"] = f"{settings.PLATFORM_DOMAIN},localhost"
    server, base_url = serve_in_thread()
    yield base_url
    server.stop()


class ServedPort(int):
    """The web server's port, with what the server has written so far."""

    log_path = ""
    process = None

    def output(self) -> str:
        with open(self.log_path, "rb") as written:
            return written.read().decode(errors="replace")


@contextmanager
def running_web_server(**environment: str):
    """``kameng web`` (uWSGI worker processes, as in production) on the test database,
    until the block ends; yields its port, with what it wrote (``.output()``)."""
    port = devstack.free_port()
    db = settings.DATABASES["default"]
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "REDIS_URL": settings.REDIS_URL, "PORT": str(port), "KAMENG_BIND": f"127.0.0.1:{port}",
           "WEB_CONCURRENCY": "2", "DJANGO_SETTINGS_MODULE": "platform_core.settings_test",
           "KAMENG_TEST_OWNS_DEVSTACK": "0", **environment}
    # the server's messages and access lines go to a file: a pipe nobody reads would fill up
    # and stop the server mid-test
    log_fd, log_path = tempfile.mkstemp(prefix="kameng-e2e-web-", suffix=".log")
    os.close(log_fd)
    log = open(log_path, "ab")  # noqa: SIM115 - appended to by the server until it stops
    process = subprocess.Popen([sys.executable, "-m", "platform_core.cli", "web"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    served = ServedPort(port)
    served.log_path, served.process = log_path, process
    try:
        if not wait_until_serving(f"http://127.0.0.1:{port}", process, 30):
            raise RuntimeError(f"web server did not start: {served.output()[-2000:]}")
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)
        try:  # and any worker that outlived its master
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
        os.unlink(log_path)


@pytest.fixture(scope="session")
def web_server(django_db_setup, django_db_blocker, sandbox_gateway):
    """One ``kameng web`` for the session's browser tests."""
    with running_web_server(KAMENG_SANDBOX_URL=sandbox_gateway) as served:
        yield served


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: apt-get install -y chromium (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_FLAGS,
                  f"--host-resolver-rules=MAP {settings.PLATFORM_DOMAIN} 127.0.0.1, "
                  f"MAP *.{settings.PLATFORM_DOMAIN} 127.0.0.1"],
        )
        yield browser
        browser.close()


@pytest.fixture
def committed_cleanup(django_db_setup, django_db_blocker):
    """For tests whose server commits: remove the shops and accounts they created."""
    from tenants import schema as schemas
    from tenants.models import Domain, Merchant, Shop, ShopDataKey, ShopMembership

    with django_db_blocker.unblock():
        shops_before = set(Shop.objects.values_list("pk", flat=True))
        merchants_before = set(Merchant.objects.values_list("pk", flat=True))
        yield
        connection.set_schema_to_public()
        for shop in Shop.objects.exclude(pk__in=shops_before).exclude(status="spare"):
            Domain.objects.filter(tenant=shop).delete()
            ShopMembership.objects.filter(shop=shop).delete()
            ShopDataKey.objects.filter(shop=shop).delete()
            schemas.drop_schema(shop.schema_name)
            Shop.objects.filter(pk=shop.pk).delete()
        Merchant.objects.exclude(pk__in=merchants_before).delete()
        # Playwright runs the test in a greenlet with its own Django connection: close them all
        connections.close_all()

