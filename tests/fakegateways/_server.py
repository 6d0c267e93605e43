"""The in-process HTTP server under every fake gateway (see the package docstring)."""
from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests


class _Headers(dict):
    """Header names compared without case, as HTTP does."""

    def __init__(self, items):
        super().__init__((name.lower(), value) for name, value in items)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def get(self, name, default=None):
        return super().get(name.lower(), default)

    def __contains__(self, name):
        return super().__contains__(name.lower())


@dataclass
class RecordedRequest:
    """One request exactly as the fake received it."""

    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: _Headers
    body: bytes
    received_at: float = field(default_factory=time.time)

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded`` (last value of a repeated name)."""
        return {name: values[-1] for name, values in parse_qs(self.body.decode("ascii"), keep_blank_values=True,
                                                               strict_parsing=bool(self.body)).items()}

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = b""  # dict/list -> JSON, str -> text, bytes as they are
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return bytes(self.body), "application/octet-stream"


Handler = Callable[..., "Reply | tuple[int, Any] | dict | list"]


def route(method: str, pattern: str):
    """Decorate a method of a :class:`FakeGateway` subclass to answer ``method pattern``;
    named groups of the regex ``pattern`` (matched against the whole path) become
    keyword arguments: ``@route("GET", r"/v1/things/(?P<thing_id>[^/]+)")``."""

    def mark(function):
        function._fake_route = (method.upper(), pattern)
        return function

    return mark


class FakeGateway:
    """Base of a fake gateway: routing, recording, failure injection, start/stop."""

    name = "fake"

    def __init__(self):
        self.requests: list[RecordedRequest] = []
        self.crashes: list[str] = []  # handler exceptions: a test should assert this stays empty
        self.lock = threading.RLock()
        self._routes: list[tuple[str, re.Pattern, Callable]] = []
        self._stalls: list[list] = []  # [method, regex, seconds, times]
        self._failures: list[list] = []  # [method, regex, status, times]
        for attribute in dir(type(self)):
            function = getattr(type(self), attribute)
            if callable(function) and hasattr(function, "_fake_route"):
                method, pattern = function._fake_route
                self._routes.append((method, re.compile(pattern), getattr(self, attribute)))
        self._server: ThreadingHTTPServer | None = None

    # --- life cycle ----------------------------------------------------------------------
    def start(self) -> FakeGateway:
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                split = urlsplit(self.path)
                recorded = RecordedRequest(self.command, split.path, parse_qs(split.query, keep_blank_values=True),
                                           _Headers(self.headers.items()), body)
                reply, stall = fake._dispatch(recorded)
                if stall:
                    time.sleep(stall)  # the work is done; only the answer is late (a read timeout)
                payload, content_type = reply.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.headers.get("Content-Type", content_type))
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        if name.lower() != "content-type":
                            self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                         name=f"fake-{self.name}-{server.server_address[1]}").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake gateway first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- test controls -------------------------------------------------------------------
    def stall(self, method: str, pattern: str, seconds: float, times: int = 1) -> None:
        """Handle the next ``times`` matching requests normally but answer ``seconds`` late."""
        with self.lock:
            self._stalls.append([method.upper(), re.compile(pattern), seconds, times])

    def fail(self, method: str, pattern: str, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with ``status`` without handling them."""
        with self.lock:
            self._failures.append([method.upper(), re.compile(pattern), status, times])

    def received(self, method: str | None = None, pattern: str | None = None) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method.upper())
                    and (pattern is None or re.fullmatch(pattern, r.path))]

    # --- dispatch ------------------------------------------------------------------------
    def _take(self, rules: list[list], request: RecordedRequest):
        for rule in rules:
            if rule[0] == request.method and rule[1].fullmatch(request.path) and rule[3] > 0:
                rule[3] -= 1
                return rule[2]
        return None

    def _dispatch(self, request: RecordedRequest) -> tuple[Reply, float]:
        with self.lock:
            self.requests.append(request)
            failure = self._take(self._failures, request)
            if failure:
                return Reply(failure, {"error": {"message": "injected failure"}}), 0.0
            stall = self._take(self._stalls, request) or 0.0
            for method, pattern, handler in self._routes:
                match = pattern.fullmatch(request.path)
                if method == request.method and match:
                    try:
                        return self._as_reply(handler(request, **match.groupdict())), stall
                    except Exception as exc:  # noqa: BLE001 - a bug in a fake must show, not hang
                        self.crashes.append(repr(exc))
                        return Reply(500, {"error": {"message": f"fake {self.name} crashed: {exc!r}"}}), 0.0
            return Reply(404, {"error": {"message": f"no route {request.method} {request.path}"}}), 0.0

    @staticmethod
    def _as_reply(result) -> Reply:
        if isinstance(result, Reply):
            return result
        if isinstance(result, tuple):
            return Reply(*result)
        return Reply(200, result)


def send_notification(url: str, body: bytes, headers: dict[str, str] | None = None,
                      timeout: float = 15) -> requests.Response:
    """POST ``body`` to ``url`` over real HTTP, as a gateway's notifier does."""
    return requests.post(url, data=body, headers=headers or {}, timeout=timeout, allow_redirects=False)
