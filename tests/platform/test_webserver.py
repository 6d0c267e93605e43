"""What ``kameng web`` runs (decision 0046): uWSGI by default, gunicorn when asked, a
clear refusal of anything else; and each uWSGI worker keeps its connections per thread.
The server itself is exercised over sockets in tests/e2e/test_web_server.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from platform_core import cli, webserver


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_kameng_web_is_uwsgi_with_the_production_settings(monkeypatch):
    monkeypatch.delenv("KAMENG_WEB_SERVER", raising=False)
    monkeypatch.setenv("KAMENG_BIND", "0.0.0.0:8123")
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    program, args = cli._process_command("web")
    assert program == args[0] and Path(program).name == "uwsgi"
    assert Path(program).parent == Path(sys.executable).parent  # the venv's own, from the pyuwsgi wheel
    assert _option(args, "--http-socket") == "0.0.0.0:8123"
    assert _option(args, "--processes") == "5" and "--master" in args
    assert _option(args, "--module") == "platform_core.uwsgi_app:application"
    assert _option(args, "--harakiri") == "30" and _option(args, "--worker-reload-mercy") == "10"
    assert _option(args, "--add-header") == "Connection: close"
    assert "--die-on-term" in args and "--strict" in args and "--need-app" in args
    assert int(_option(args, "--listen")) <= int(Path("/proc/sys/net/core/somaxconn").read_text())


def test_the_port_alone_binds_loopback(monkeypatch):
    monkeypatch.delenv("KAMENG_BIND", raising=False)
    monkeypatch.delenv("KAMENG_WEB_SERVER", raising=False)
    monkeypatch.setenv("PORT", "8999")
    _, args = cli._process_command("web")
    assert _option(args, "--http-socket") == "127.0.0.1:8999"


def test_gunicorn_on_request(monkeypatch):
    monkeypatch.setenv("KAMENG_WEB_SERVER", "Gunicorn")
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    program, args = cli._process_command("web")
    assert Path(program).name == "gunicorn"
    assert _option(args, "--workers") == "4" and _option(args, "--worker-class") == "sync"


def test_an_unknown_server_is_refused_with_the_choices(monkeypatch, capsys):
    monkeypatch.setenv("KAMENG_WEB_SERVER", "waitress")
    assert cli.main(["web"]) == 2  # refused before anything is started
    message = capsys.readouterr().err
    assert "waitress" in message and "uwsgi" in message and "gunicorn" in message


def test_the_command_line_is_one_uwsgi_accepts():
    # --strict: uWSGI stops at an option it does not know, so a typo cannot pass silently
    _, args = cli._process_command("web")
    checked = subprocess.run([*args[:1], "--strict", "--help"], capture_output=True, text=True, timeout=30)
    known = checked.stdout
    for option in (a for a in args[1:] if a.startswith("--")):
        assert f" {option} " in known or f" {option}\n" in known or f"|{option} " in known, option


def test_each_uwsgi_worker_keeps_its_connections_per_thread():
    # what uWSGI does with the module: import it in the master (its ``uwsgi`` module present),
    # then call the post-fork hook in each worker
    script = """
import os, sys, threading, types
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings_test")
sys.modules["uwsgi"] = types.ModuleType("uwsgi")
import platform_core.uwsgi_app as app
import uwsgi
from platform_core.handlers import keep_connections_per_thread
assert uwsgi.post_fork_hook is keep_connections_per_thread
assert callable(app.application)
from django.core.cache import caches
from django.db import connections
uwsgi.post_fork_hook()
assert isinstance(connections._connections, threading.local) and isinstance(caches._connections, threading.local)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr


def test_without_uwsgi_the_module_is_just_the_application():
    script = """
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings_test")
import platform_core.uwsgi_app as app, platform_core.wsgi as wsgi
assert app.uwsgi is None and app.application is wsgi.application
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr


@pytest.mark.parametrize("limit, expected", [("4096\n", 2048), ("128", 128), ("junk", 128), (None, 128)])
def test_the_backlog_stays_within_the_kernels_limit(tmp_path, limit, expected):
    limit_file = tmp_path / "somaxconn"  # None: the file is not there (not Linux)
    if limit is not None:
        limit_file.write_text(limit)
    assert webserver._backlog(limit_file) == expected
