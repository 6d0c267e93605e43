"""Serving the gateway: a threading WSGI server (stdlib) that keeps HTTP/1.1 connections
open between requests, as a hosted gateway's API does, in the foreground or in a thread
for tests."""
from __future__ import annotations

import functools
import io
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sandbox_gateway.app import MAX_BODY, GatewayApp
from sandbox_gateway.store import Store
from sandbox_gateway.webhooks import DEFAULT_RETRY_DELAYS, Deliverer

logger = logging.getLogger("sandbox_gateway.http")


def default_db_path() -> Path:
    return Path(os.environ.get("KAMENG_STATE_DIR", ".kameng")) / "sandbox-gateway.sqlite3"


#: an idle kept-alive connection is closed after this many seconds
IDLE_SECONDS = 30


#: limits of a request head, as the standard library's: a longer line, or more fields, is 431
MAX_HEADER_LINE = 65536
MAX_HEADER_FIELDS = 100
_HTTP_VERSION = re.compile(r"HTTP/(\d{1,10})\.(\d{1,10})")


class RequestHeaders:
    """A request's header fields, found by name in any case: what the handler and
    wsgiref's environ need of ``email.message.Message``, which the standard library's
    handler builds with the ``email`` parser (~30 % of the gateway's CPU per request)."""

    __slots__ = ("_fields", "_first")

    def __init__(self, fields: list[tuple[str, str]]):
        self._fields = fields
        self._first: dict[str, str] = {}
        for name, value in fields:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default=None):
        return self._first.get(name.lower(), default)

    def __getitem__(self, name: str):
        return self._first.get(name.lower())

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._first

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def get_all(self, name: str, failobj=None):
        found = [value for field, value in self._fields if field.lower() == name.lower()]
        return found or failobj

    def get_content_type(self) -> str:
        return (self.get("Content-Type") or "text/plain").split(";", 1)[0].strip().lower()


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's handler, serving requests one after another on one connection: a shop
    calls its gateway on every checkout, and a new connection (and thread) per call cost
    both sides CPU. Every answer of the app carries Content-Length; a request body is
    read whole before the app runs, so the next request starts where this one ended."""

    protocol_version = "HTTP/1.1"  # what parse_request honours: keep-alive unless asked to close
    timeout = IDLE_SECONDS
    wbufsize = 64 * 1024  # an answer's status, headers and body leave in one write (flushed per answer)

    def setup(self):
        super().setup()
        # no Nagle: a small answer must not wait for the client's delayed ACK of the last one
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self):
        self.close_connection = True
        try:
            self._handle_one()
            while not self.close_connection:
                self._handle_one()
        except (TimeoutError, ConnectionError):  # idle too long, or the client went away
            self.close_connection = True

    def _handle_one(self):
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            self.close_connection = True
            return
        if not self.parse_request():  # an error was sent (and the connection marked closing)
            return
        environ = self.get_environ()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        body = self.rfile
        if 0 < length <= MAX_BODY:
            body = io.BytesIO(self.rfile.read(length))
        elif length:  # refused by the app unread: nothing after it can be found again
            self.close_connection = True
        self._answer(environ, body)

    def _answer(self, environ: dict, body) -> None:
        """Run the app and write its answer — status line, Date, Server, the app's headers
        and body — in one write. What wsgiref's ServerHandler does for an app whose answers
        all carry Content-Length and are made whole, without its copy of the process's
        environment per request (~40 % of the server's own CPU per payment)."""
        environ.update({"wsgi.input": body, "wsgi.errors": self.get_stderr(), "wsgi.version": (1, 0),
                        "wsgi.url_scheme": "http", "wsgi.multithread": True, "wsgi.multiprocess": False,
                        "wsgi.run_once": False})
        started = []

        def start_response(status, headers, exc_info=None):
            started[:] = [status, headers]
            return self._no_write

        try:
            chunks = self.server.get_app()(environ, start_response)
            try:
                payload = b"".join(chunks)
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
            status, headers = started
        except Exception:  # noqa: BLE001 - as wsgiref: a 500, the cause logged, the connection closed
            logger.exception("sandbox gateway: %s %s failed", self.command, self.path)
            status, headers, payload = "500 Internal Server Error", [("Content-Type", "text/plain")], \
                b"A server error occurred."
            self.close_connection = True
        version = "HTTP/1.1" if self.request_version == "HTTP/1.1" else "HTTP/1.0"
        head = [f"{version} {status}", f"Date: {_http_date()}", f"Server: {self.version_string()}"]
        head += [f"{name}: {value}" for name, value in headers]
        if not any(name.lower() == "content-length" for name, _ in headers):
            head.append(f"Content-Length: {len(payload)}")
        self.wfile.write("\r\n".join(head).encode("iso-8859-1") + b"\r\n\r\n" + payload)
        self.wfile.flush()
        self.log_request(status.split(" ", 1)[0], len(payload))

    @staticmethod
    def _no_write(data: bytes) -> None:
        raise RuntimeError("the sandbox gateway's answers are returned whole, not written")

    def parse_request(self) -> bool:
        """The request line and head, as ``BaseHTTPRequestHandler.parse_request`` reads
        them for HTTP/1.0 and 1.1 (anything else is refused: 505 for another version,
        400 for no version), with the fields read line by line (RequestHeaders). A
        folded field line (obs-fold) is refused with 400, as RFC 9112 allows; a field
        line over 64 KB, or over 100 fields, with 431. False: an error was sent."""
        self.command = None
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if not words:
            return False
        version = _HTTP_VERSION.fullmatch(words[-1]) if len(words) == 3 else None
        if version is None:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({self.requestline!r})")
            return False
        if version.group(1, 2) not in (("1", "0"), ("1", "1")):
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({words[-1]})")
            return False
        self.command, self.path, self.request_version = words
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")  # as the standard library: one leading slash
        fields = []
        while True:
            line = self.rfile.readline(MAX_HEADER_LINE + 1)
            if len(line) > MAX_HEADER_LINE:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            if len(fields) == MAX_HEADER_FIELDS:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
                return False
            name, colon, value = str(line, "iso-8859-1").partition(":")
            if not colon or not name or name != name.strip():  # no name, a folded line, space before ':'
                self.send_error(HTTPStatus.BAD_REQUEST, "Bad header line")
                return False
            fields.append((name, value.strip()))
        self.headers = RequestHeaders(fields)
        self.close_connection = self.request_version != "HTTP/1.1"
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if self.headers.get("Expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            self.handle_expect_100()
            self.wfile.flush()  # the client waits for it before it sends the body
        return True

    def log_message(self, format, *args):  # access log through logging, not raw stderr
        if logger.isEnabledFor(logging.INFO):
            logger.info("%s %s", self.address_string(), format % args)


@functools.lru_cache(maxsize=2)
def _http_date_at(second: int) -> str:
    return formatdate(second, usegmt=True)


def _http_date() -> str:
    return _http_date_at(int(time.time()))


class GatewayServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # parallel tests and replays open many connections at once

    app: GatewayApp
    _cleanup: str | None = None

    def __init__(self, *args, **kwargs):
        self._open: set = set()  # the connections being served, closed by stop()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request_thread(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving, wait for background webhooks to give up, close the database."""
        self.shutdown()
        self.server_close()
        with self._open_lock:  # kept-alive connections end with the server, not when idle
            for request in self._open:
                try:
                    request.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.app.close()
        if self._cleanup:
            shutil.rmtree(self._cleanup, ignore_errors=True)


def build_app(db_path: str | Path | None = None, *, public_url: str = "", auto_register: bool = True,
              webhook_timeout: float = 5.0, retry_delays=DEFAULT_RETRY_DELAYS) -> GatewayApp:
    store = Store(db_path or default_db_path())
    deliverer = Deliverer(store, timeout=webhook_timeout, retry_delays=retry_delays)
    return GatewayApp(store, deliverer, public_url=public_url, auto_register=auto_register)


def create_server(host: str = "127.0.0.1", port: int = 8001, *, app: GatewayApp | None = None,
                  **options) -> GatewayServer:
    app = app or build_app(**options)
    server = make_server(host, port, app, server_class=GatewayServer, handler_class=_QuietHandler)
    server.app = app
    return server


def serve_in_thread(port: int = 0, *, host: str = "127.0.0.1", db_path: str | Path | None = None,
                    **options) -> tuple[GatewayServer, str]:
    """Start a gateway on a thread (port 0: a free one); returns (server, base_url).
    Without ``db_path`` it uses a throw-away database removed by ``server.stop()``."""
    cleanup = None
    if db_path is None:
        cleanup = tempfile.mkdtemp(prefix="sandbox-gateway-")
        db_path = Path(cleanup) / "gateway.sqlite3"
    server = create_server(host, port, db_path=db_path, **options)
    server._cleanup = cleanup
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                              name=f"sandbox-gateway-{server.server_address[1]}")
    thread.start()
    return server, server.base_url
