"""How ``kameng web`` serves the WSGI application: uWSGI by default, gunicorn on request
(``KAMENG_WEB_SERVER``; docs/decisions/0046-uwsgi-serves-the-web.md).

Both run N single-threaded worker processes forked from a master that imported Django
once, answer each request on its own connection (``Connection: close``, as gunicorn's
sync workers do: a worker that waited on an idle kept connection could serve nobody
else), restart a worker stuck for 30 s, let in-flight requests finish for up to 10 s on
SIGTERM, and write one combined-format access line per request. uWSGI does the HTTP
parsing, the access line and the accept loop in C: measured against gunicorn on the same
database, ~10 % less web CPU per paid order (``checkout_ab``)."""
from __future__ import annotations

import os
from pathlib import Path

SERVERS = ("uwsgi", "gunicorn")
#: the largest request head accepted (request line and headers together): big cookies
#: and long query strings fit; gunicorn's own limits are 8,190 bytes per header field
REQUEST_HEAD_BYTES = 32768
#: seconds a request may run before its worker is replaced / in-flight requests get on SIGTERM
REQUEST_TIMEOUT, GRACEFUL_TIMEOUT = 30, 10
#: connections waiting for a worker; the kernel caps it at net.core.somaxconn
BACKLOG = 2048
#: the Apache/nginx "combined" line, as gunicorn writes it
COMBINED_LOG_FORMAT = '%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(rsize) ' \
                      '"%(referer)" "%(uagent)"'


class UnknownServer(ValueError):
    pass


SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


def _backlog(limit_file: Path = SOMAXCONN) -> int:
    # uWSGI refuses to start with a listen queue above the kernel's limit
    try:
        limit = int(limit_file.read_text())
    except (OSError, ValueError):
        return 128
    return max(16, min(BACKLOG, limit))


def web_command(bin_dir: Path) -> list[str]:
    """The command line of ``kameng web`` from the environment: ``KAMENG_BIND`` (or
    ``127.0.0.1:$PORT``), ``WEB_CONCURRENCY`` worker processes (3), ``KAMENG_WEB_SERVER``."""
    bind = os.environ.get("KAMENG_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
    workers = os.environ.get("WEB_CONCURRENCY", "3")
    server = os.environ.get("KAMENG_WEB_SERVER", "uwsgi").strip().lower() or "uwsgi"
    if server == "gunicorn":
        return [str(bin_dir / "gunicorn"), "platform_core.wsgi:application", "--bind", bind,
                "--workers", workers, "--worker-class", "sync", "--timeout", str(REQUEST_TIMEOUT),
                "--graceful-timeout", str(GRACEFUL_TIMEOUT),
                "--preload",  # import Django once in the master: workers start warm
                "--access-logfile", "-", "--logger-class", "platform_core.gunicorn_logging.AccessLogger",
                "--config", "python:platform_core.gunicorn_conf"]
    if server != "uwsgi":
        raise UnknownServer(f"KAMENG_WEB_SERVER is one of {', '.join(SERVERS)}, not {server!r}")
    return [str(bin_dir / "uwsgi"), "--strict",  # an option uWSGI does not know is an error, not ignored
            "--http-socket", bind, "--module", "platform_core.uwsgi_app:application",
            "--master", "--processes", workers,
            "--single-interpreter", "--enable-threads", "--need-app",
            "--thunder-lock",  # one worker at a time waits in accept(): no herd woken per connection
            "--listen", str(_backlog()), "--buffer-size", str(REQUEST_HEAD_BYTES),
            "--add-header", "Connection: close",
            "--harakiri", str(REQUEST_TIMEOUT),
            "--die-on-term", "--worker-reload-mercy", str(GRACEFUL_TIMEOUT),
            # a client that hung up is not an error of ours
            "--ignore-sigpipe", "--ignore-write-errors", "--disable-write-exception",
            "--log-format", COMBINED_LOG_FORMAT]
