"""A real HTTP endpoint for a shop, answered by Django's test client.

The sandbox gateway delivers webhooks over HTTP; this server receives them and hands
them to ``django.test.Client`` with the shop's Host header. Two modes:

* ``pumped`` (default): requests queue up and the *test's own thread* answers them in
  :meth:`ShopBridge.call` / :meth:`ShopBridge.pump`, on the test's database
  connection, so they see the test's uncommitted data and roll back with it;
* ``inline``: each request is answered on the server's thread with its own database
  connection (tests that commit).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.db import connections
from django.test import Client


@dataclass
class Forwarded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    reply: queue.Queue = field(default_factory=queue.Queue)


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str


class ShopBridge:
    def __init__(self, host: str, *, inline: bool = False):
        self.host, self.inline = host, inline
        self.inbox: queue.Queue[Forwarded] = queue.Queue()
        self.closed = False
        self.log: list[tuple[Forwarded, Answer]] = []
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                item = Forwarded(self.command, self.path, dict(self.headers.items()), body)
                if bridge.closed:
                    answer = Answer(503, b"bridge closed", "text/plain")
                elif bridge.inline:
                    try:
                        answer = bridge.answer(item)
                    finally:
                        connections.close_all()
                else:
                    bridge.inbox.put(item)
                    try:
                        answer = item.reply.get(timeout=30)
                    except queue.Empty:
                        answer = Answer(504, b"test did not pump", "text/plain")
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_POST = do_GET = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def answer(self, item: Forwarded) -> Answer:
        headers = {name: value for name, value in item.headers.items()
                   if name.lower() not in ("host", "content-length", "content-type")}
        response = Client(HTTP_HOST=self.host).generic(
            item.method, item.path, data=item.body, content_type=item.headers.get("Content-Type", ""),
            headers=headers)
        answer = Answer(response.status_code, response.content, response.get("Content-Type", "text/plain"))
        self.log.append((item, answer))
        return answer

    def _answer_one(self, timeout: float) -> bool:
        try:
            item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return False
        try:
            answer = self.answer(item)
        except BaseException:
            item.reply.put(Answer(500, b"test bridge failed", "text/plain"))
            raise
        item.reply.put(answer)
        return True

    def call(self, function, timeout: float = 30):
        """Run ``function`` on a helper thread (e.g. a click on the gateway's Pay button)
        while this thread answers the requests it causes; returns its result."""
        outcome: dict = {}

        def run():
            try:
                outcome["value"] = function()
            except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
                outcome["error"] = exc

        helper = threading.Thread(target=run, daemon=True)
        helper.start()
        deadline = time.monotonic() + timeout
        while helper.is_alive():
            if time.monotonic() > deadline:
                raise TimeoutError("the bridged call did not finish")
            self._answer_one(0.02)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def pump(self, count: int = 1, timeout: float = 10) -> None:
        """Answer ``count`` requests that arrive in the background (async webhooks)."""
        deadline = time.monotonic() + timeout
        answered = 0
        while answered < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {count} request(s), got {answered}")
            answered += self._answer_one(0.05)

    def close(self) -> None:
        """Stop; whatever still waits for an answer gets a 503 (as from a shop that is down)."""
        self.closed = True
        while True:
            try:
                self.inbox.get_nowait().reply.put(Answer(503, b"bridge closed", "text/plain"))
            except queue.Empty:
                break
        self.server.shutdown()
        self.server.server_close()
