"""Shared fixtures: one migrated test database per run with a template schema, a small
pool of spares and two ready shops (alpha, bravo) reused by every test; each test runs
in a transaction that is rolled back. Never a schema per test class."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client

PASSWORD = "correct-horse-battery-staple"

# Every test here needs the migrated test database, including those that commit through
# other connections (races, a real web server) and so do not use the `db` fixture.
import pytest_django.fixtures as _pytest_django_fixtures  # noqa: E402

_databases_for_setup = _pytest_django_fixtures._get_databases_for_setup


def _always_with_default(items):
    aliases, serialized = _databases_for_setup(items)
    return aliases | {"default"}, serialized


_pytest_django_fixtures._get_databases_for_setup = _always_with_default

# The test client takes the middleware chain each request takes when served
# (platform_core/handlers.py): token API calls the shorter one, built from
# SESSIONLESS_MIDDLEWARE, webhooks the shortest, GATEWAY_MIDDLEWARE (override those too
# when a test overrides MIDDLEWARE).
import django.test.client as _test_client  # noqa: E402

from platform_core.handlers import HandlerPerRequestKind  # noqa: E402

_client_init = _test_client.Client.__init__


def _client_init_as_served(self, enforce_csrf_checks=False, *args, **kwargs):
    _client_init(self, enforce_csrf_checks, *args, **kwargs)
    if type(self.handler) is _test_client.ClientHandler:  # DRF's APIClient puts its own after this
        self.handler = HandlerPerRequestKind(_test_client.ClientHandler, enforce_csrf_checks)


_test_client.Client.__init__ = _client_init_as_served


def pytest_unconfigure(config):
    """Stop the throw-away PostgreSQL + Redis this run started (settings_test.py)."""
    if os.environ.get("KAMENG_TEST_OWNS_DEVSTACK") == "1" and os.environ.get("KAMENG_DEVSTACK_DIR"):
        from platform_core import devstack

        base = Path(os.environ["KAMENG_DEVSTACK_DIR"])
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - best effort before stopping the server
            pass
        devstack.stop(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """After pytest-django migrated the test database: template, pool, two shops."""
    from tenants.models import Merchant
    from tenants.services import shop_create, spare_pool_refill, template_ensure

    with django_db_blocker.unblock():
        cache.clear()
        template_ensure()
        spare_pool_refill()
        for slug, email in (("alpha", "alice@example.com"), ("bravo", "bob@example.com")):
            owner = Merchant.objects.create_user(email, PASSWORD, name=slug.title() + " owner")
            shop_create(slug=slug, name=f"{slug.title()} Shop", owner=owner, language="en", sample_catalog=False)
        connection.set_schema_to_public()
    yield
    # connections opened by helper threads, greenlets and subprocesses must not keep the
    # test database from being dropped
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture(autouse=True)
def _public_schema_between_tests():
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


@pytest.fixture(autouse=True)
def _clean_cache():
    yield
    cache.clear()
    from platform_core.orders.tasks import forget_wake_ups

    forget_wake_ups()


@pytest.fixture
def alpha(db):
    from tenants.models import Shop

    return Shop.objects.get(slug="alpha")


@pytest.fixture
def bravo(db):
    from tenants.models import Shop

    return Shop.objects.get(slug="bravo")


@pytest.fixture
def alice(db):
    from tenants.models import Merchant

    return Merchant.objects.get(email="alice@example.com")


@pytest.fixture
def bob(db):
    from tenants.models import Merchant

    return Merchant.objects.get(email="bob@example.com")


def host_of(shop) -> str:
    return f"{shop.slug}.{settings.PLATFORM_DOMAIN}"


@pytest.fixture
def platform_client(db):
    return Client(HTTP_HOST=settings.PLATFORM_DOMAIN)


@pytest.fixture
def shop_client(db):
    """A browser on a shop host: ``shop_client(shop, user=None)``."""

    def make(shop, user=None):
        client = Client(HTTP_HOST=host_of(shop))
        if user is not None:
            client.force_login(user)
        return client

    return make

