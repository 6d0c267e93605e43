"""The benchmarks' load generator reads real HTTP answers: sized, chunked, and closed
connections reopened (tests/bench/_shop.py HttpWire)."""
from __future__ import annotations

import socket
import threading

import pytest

from tests.bench._shop import HttpWire, http_request
from tests.raw_http import accepted, read_request

ANSWERS = [
    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"ok\": true}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;x=1\r\npedia!\r\n0\r\n\r\n",
    b"HTTP/1.1 409 Conflict\r\nconnection: close\r\ncontent-length: 4\r\n\r\nsold",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
]


@pytest.fixture
def server():
    """Answers each request with the next canned answer; closes after a 'close' one."""
    listener = socket.create_server(("127.0.0.1", 0))
    received, connections = [], []

    def serve():
        answers = iter(ANSWERS)
        for conn in accepted(listener):
            connections.append(conn)
            with conn:
                buffer = b""
                while (request := read_request(conn, buffer)) is not None:
                    head, body, buffer = request
                    received.append((head.split(b"\r\n")[0], body))
                    answer = next(answers)
                    conn.sendall(answer)
                    if b"close" in answer:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], received, connections
    listener.close()


def test_answers_are_read_whole_and_a_closed_connection_is_reopened(server):
    port, received, connections = server
    wire = HttpWire("127.0.0.1", port, timeout=5)
    request = http_request("POST", "/api/v1/orders/", "flash.kameng.test", {"Content-Type": "application/json"},
                           b'{"a": 1}')
    assert request.startswith(b"POST /api/v1/orders/ HTTP/1.1\r\nHost: flash.kameng.test\r\nContent-Length: 8\r\n")
    assert wire.exchange(request) == (201, b'{"ok": true}')
    assert wire.exchange(request) == (200, b"Wikipedia!")
    assert wire.exchange(request) == (409, b"sold")
    assert wire.exchange(http_request("GET", "/", "h", {})) == (200, b"")
    assert [line for line, _ in received] == [b"POST /api/v1/orders/ HTTP/1.1"] * 3 + [b"GET / HTTP/1.1"]
    assert received[0][1] == b'{"a": 1}'
    assert len(connections) == 2  # the server closed after the third answer


def test_a_server_that_hangs_up_mid_answer_is_an_error():
    listener = socket.create_server(("127.0.0.1", 0))

    def half_answer():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        conn.close()

    threading.Thread(target=half_answer, daemon=True).start()
    wire = HttpWire("127.0.0.1", listener.getsockname()[1], timeout=5)
    with pytest.raises(ConnectionError):
        wire.exchange(http_request("GET", "/", "h", {}))
    listener.close()
