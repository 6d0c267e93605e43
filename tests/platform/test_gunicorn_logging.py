"""``kameng web`` under gunicorn (``KAMENG_WEB_SERVER=gunicorn``): its access line is
gunicorn's own combined line, built cheaper."""
from __future__ import annotations

import datetime
import logging

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from platform_core.cli import _process_command
from platform_core.gunicorn_logging import AccessLogger


class _Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def _logger(cls, access_format: str | None = None):
    cfg = Config()
    cfg.set("accesslog", "-")
    if access_format:
        cfg.set("access_log_format", access_format)
    logger = cls(cfg)
    logger.now = lambda: "[04/Dec/2026:18:00:00 +0000]"
    captured = _Captured()
    captured.setFormatter(logging.Formatter(logger.access_fmt))
    logger.access_log.handlers = [captured]
    return logger, captured


class _Response:
    def __init__(self, status, sent):
        self.status, self.sent, self.headers = status, sent, [("Content-Type", "application/json")]


@pytest.mark.parametrize(("environ", "response"), [
    ({"REMOTE_ADDR": "192.0.2.1", "REQUEST_METHOD": "POST", "RAW_URI": "/api/v1/orders/",
      "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_USER_AGENT": "integration/1.0", "HTTP_AUTHORIZATION": "Token abc"},
     _Response("201 Created", 1843)),
    ({"REMOTE_ADDR": "192.0.2.2", "REQUEST_METHOD": "GET", "RAW_URI": '/search?q="card"', "SERVER_PROTOCOL": "HTTP/1.0",
      "HTTP_REFERER": 'https://x.test/"quoted"', "HTTP_AUTHORIZATION": "Basic YWxpY2U6c2VjcmV0"},
     _Response("200 OK", 0)),
    ({"REQUEST_METHOD": "GET", "RAW_URI": "/healthz", "SERVER_PROTOCOL": "HTTP/1.1"}, _Response(404, None)),
])
def test_the_access_line_is_gunicorns_own(environ, response):
    elapsed = datetime.timedelta(milliseconds=12)
    lines = []
    for cls in (AccessLogger, glogging.Logger):  # both log to the one "gunicorn.access" logger: in turn
        logger, captured = _logger(cls)
        logger.access(response, environ, environ, elapsed)
        lines.append(captured.lines)
    ours, theirs = lines
    assert ours == theirs and len(ours) == 1


def test_another_format_is_gunicorns_to_build():
    ours, lines = _logger(AccessLogger, '%(s)s %(M)sms %({content-type}o)s')
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/", "SERVER_PROTOCOL": "HTTP/1.1"}
    ours.access(_Response("200 OK", 5), environ, environ, datetime.timedelta(milliseconds=7))
    assert lines.lines == ["200 7ms application/json"]


@pytest.fixture
def gunicorn_chosen(monkeypatch):
    monkeypatch.setenv("KAMENG_WEB_SERVER", "gunicorn")


def test_kameng_web_uses_it(gunicorn_chosen):
    _, args = _process_command("web")
    assert args[args.index("--logger-class") + 1] == "platform_core.gunicorn_logging.AccessLogger"


def test_kameng_web_workers_keep_connections_per_thread(gunicorn_chosen):
    import subprocess
    import sys

    _, args = _process_command("web")
    assert args[args.index("--config") + 1] == "python:platform_core.gunicorn_conf"
    # in a process of its own: what a worker does after loading the application
    script = """
import os, threading
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings_test")
import django
django.setup()
from django.core.cache import caches
from django.db import connections
before = connections["default"]
from platform_core.gunicorn_conf import post_worker_init
post_worker_init(None)
assert isinstance(connections._connections, threading.local) and isinstance(caches._connections, threading.local)
assert connections["default"] is before is connections["default"]  # made before: kept
assert caches["default"] is caches["default"]
seen = {}
def other():
    seen["db"], seen["cache"] = connections["default"], caches["default"]
thread = threading.Thread(target=other)
thread.start(); thread.join()
assert seen["db"] is not before and seen["cache"] is not caches["default"]  # each thread its own
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
