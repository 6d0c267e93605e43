"""``kameng web`` as production runs it (uWSGI, decision 0046), spoken to over real
sockets: one answer per connection, big request heads, an access line per request, many
clients at once, and a shutdown that lets the request in flight end. (Request bodies:
the browser test's forms and the gateway's webhooks go through the same server.)"""
from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
import uuid

from django.conf import settings

from tests.e2e.conftest import running_web_server

#: the combined line: address, identity, user, [time], "request", status, size, "referer", "agent"
COMBINED = re.compile(r'^\S+ - \S+ \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
                      r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$')


def _exchange(port: int, request: bytes, *, timeout: float = 10) -> tuple[bytes, bytes]:
    """Send ``request`` on a new connection and read until the server closes it: (head, body)."""
    with socket.create_connection(("127.0.0.1", int(port)), timeout=timeout) as conn:
        conn.sendall(request)
        received = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def _request(method: str, path: str, *, host: str = "", headers: dict[str, str] | None = None,
             body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host or settings.PLATFORM_DOMAIN}",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _header(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.decode("latin-1").partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def test_each_answer_ends_its_connection_and_says_so(web_server):
    head, body = _exchange(web_server, _request("GET", "/healthz"))
    # the server closed the connection after one answer (recv saw the end), and told the client
    assert _status(head) in (200, 503), head
    assert _header(head, "Connection") == "close"
    assert int(_header(head, "Content-Length")) == len(body)
    assert json.loads(body)["checks"]["database"] == {"ok": True}  # the application answered, whole


def test_every_request_gets_one_combined_access_line(web_server):
    marker = uuid.uuid4().hex
    agent = f"kameng-e2e/{marker}"
    head, _ = _exchange(web_server, _request("GET", f"/no-such-page-{marker}?q=1",
                                                headers={"User-Agent": agent, "Referer": "https://ref.test/x"}))
    assert _status(head) == 404
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in web_server.output().splitlines() if marker in line and COMBINED.match(line)]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(lines) == 1, web_server.output()[-3000:]
    logged = COMBINED.match(lines[0])
    assert logged["request"] == f"GET /no-such-page-{marker}?q=1 HTTP/1.1"
    assert (logged["status"], logged["referer"], logged["agent"]) == ("404", "https://ref.test/x", agent)


def test_a_big_request_head_is_served_and_an_oversized_one_refused(web_server):
    cookie = "c=" + "x" * 20000  # browsers send big cookies; the request head may reach 32 KB
    head, _ = _exchange(web_server, _request("GET", "/healthz", headers={"Cookie": cookie}))
    assert _status(head) in (200, 503), head
    try:  # beyond the limit the connection is dropped, never half-read into a request
        head, _ = _exchange(web_server, _request("GET", "/healthz", headers={"Cookie": "c=" + "x" * 40000}))
    except ConnectionResetError:
        head = b""
    assert head == b"" or _status(head) >= 400


def test_many_clients_at_once_all_get_their_answer(web_server):
    statuses: list[int] = []
    lock = threading.Lock()

    def client():
        head, _ = _exchange(web_server, _request("GET", "/healthz"), timeout=30)
        with lock:
            statuses.append(_status(head))

    threads = [threading.Thread(target=client) for _ in range(60)]  # far more than its 2 workers
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 60 and set(statuses) <= {200, 503}


def test_sigterm_lets_the_request_in_flight_finish_then_stops(django_db_setup):
    with running_web_server() as served:
        body = b'{"lines": []}'
        conn = socket.create_connection(("127.0.0.1", int(served)), timeout=10)
        # the request arrives in two parts: its worker is busy reading it when SIGTERM comes
        conn.sendall(_request("POST", "/api/v1/orders/", headers={"Content-Type": "application/json"},
                              body=body)[:-5])
        time.sleep(0.5)
        served.process.send_signal(signal.SIGTERM)
        time.sleep(1)
        conn.sendall(body[-5:])
        answer = conn.recv(65536)
        conn.close()
        assert answer.startswith(b"HTTP/1.1 "), answer
        served.process.wait(timeout=15)
        assert served.process.returncode == 0
