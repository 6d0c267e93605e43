"""A real Celery worker: heartbeat for /healthz, and tasks run in the shop they were sent from."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django_tenants.utils import tenant_context

from platform_core.celery import app
from platform_core.tasks import HEARTBEAT_KEY, redis_client, worker_heartbeat
from tests.testplugins.dummy_gateway.tasks import record_schema


@pytest.fixture(scope="module")
def worker():
    env = dict(os.environ)
    db = settings.DATABASES["default"]
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["REDIS_URL"] = settings.REDIS_URL
    env["KAMENG_TEST_OWNS_DEVSTACK"] = "0"
    env["KAMENG_TEST_WORKER"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "platform_core", "worker", "--loglevel", "WARNING",
         "--concurrency", "1", "--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def queued():
    """Send tasks to the broker for real instead of running them in-process."""
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = True


def _wait_for(key: str, seconds: float = 30):
    client = redis_client()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = client.get(key)
        if value is not None:
            return value.decode()
        time.sleep(0.1)
    return None


def test_healthz_reports_the_worker_heartbeat(db, worker, queued):
    redis_client().delete(HEARTBEAT_KEY)
    before = Client(HTTP_HOST="kameng.test").get("/healthz")
    assert before.status_code == 503
    body = before.json()
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert body["checks"]["worker"]["ok"] is False
    worker_heartbeat.delay()
    assert _wait_for(HEARTBEAT_KEY) is not None, worker.stdout.read1().decode() if worker.poll() is not None else ""
    after = Client(HTTP_HOST="alpha.kameng.test").get("/healthz")
    assert after.status_code == 200 and after.json()["status"] == "ok"
    assert after.json()["schema"] == "shop_alpha"


def test_tasks_run_in_the_schema_they_were_sent_from(db, alpha, worker, queued):
    key_shop, key_public = f"test:{uuid.uuid4()}", f"test:{uuid.uuid4()}"
    with tenant_context(alpha):
        record_schema.delay(key_shop)
    record_schema.delay(key_public)
    assert _wait_for(key_shop) == "shop_alpha"
    assert _wait_for(key_public) == "public"
    assert connection.schema_name == "public"


def test_healthz_answers_503_when_redis_is_unreachable(db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client(HTTP_HOST="kameng.test").get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True
