"""A shop keeps its connection to the sandbox gateway between calls, and the gateway
serves one request after another on it; a connection the gateway dropped in between is
replaced without the buyer noticing, and a write is sent again only when the gateway
would do it at most once (an Idempotency-Key)."""
from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.payments.sandbox import plugin as sandbox
from sandbox_gateway import serve_in_thread
from tests.raw_http import accepted, read_request

AUTH = {"Authorization": "Bearer sk_sandbox_" + "a" * 24}


@pytest.fixture
def fresh_connections():
    sandbox._kept.__dict__.clear()
    yield
    for connection in sandbox._kept_connections().values():
        connection.close()
    sandbox._kept.__dict__.clear()


@pytest.fixture
def counted_gateway(monkeypatch):
    """A real gateway that counts the connections it accepted."""
    from sandbox_gateway.server import GatewayServer

    accepted = []
    original = GatewayServer.process_request_thread

    def counting(self, request, client_address):
        accepted.append(client_address)
        return original(self, request, client_address)

    monkeypatch.setattr(GatewayServer, "process_request_thread", counting)
    server, base = serve_in_thread()
    yield server, base, accepted
    server.stop()


def test_the_gateway_answers_several_requests_on_one_connection_and_ends_it_on_stop():
    server, base = serve_in_thread()
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    answers = []
    for body in (None, b"amount=100", None):  # a GET, a POST with a body (refused, read whole), a GET
        connection.request("POST" if body else "GET", "/v1/payments" if body else "/v1/payments/pay_x",
                           body=body, headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        answers.append((response.status, response.read(), response.will_close))
    first_socket = connection.sock
    assert [(status, will_close) for status, _, will_close in answers] == [(404, False), (400, False),
                                                                          (404, False)]
    assert b"No payment pay_x" in answers[2][1]
    assert connection.sock is first_socket  # the same connection all along
    server.stop()
    first_socket.settimeout(2)
    assert first_socket.recv(1) == b""  # the server ended it: it does not linger until idle


def test_an_http_1_0_client_or_connection_close_gets_one_answer_and_a_closed_connection():
    server, base = serve_in_thread()
    try:
        for request in (b"GET /v1/payments/pay_x HTTP/1.0\r\nAuthorization: " + AUTH["Authorization"].encode()
                        + b"\r\n\r\n",
                        b"GET /v1/payments/pay_x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
            with socket.create_connection(server.server_address, timeout=5) as raw:
                raw.sendall(request)
                received = b""
                while chunk := raw.recv(65536):
                    received += chunk
                assert received.count(b"HTTP/1.") == 1 and b"Content-Length:" in received
    finally:
        server.stop()


def test_calls_share_one_connection_and_survive_a_gateway_restart(counted_gateway, fresh_connections):
    server, base, accepted = counted_gateway
    for _ in range(3):
        status, body = sandbox._http_call("GET", f"{base}/v1/payments/pay_x", form=None, headers=AUTH)
        assert status == 404 and b"pay_x" in body
    assert len(accepted) == 1
    # the gateway goes away and comes back on the same port: the dropped connection is noticed
    port = server.server_address[1]
    server.stop()
    time.sleep(0.1)
    again, _ = serve_in_thread(port=port)
    try:
        status, _ = sandbox._http_call("GET", f"{base}/v1/payments/pay_x", form=None, headers=AUTH)
        assert status == 404 and len(accepted) == 2
    finally:
        again.stop()


def _serving(listener, seen: dict, answer_on):
    """For a fixture: ``answer_on(conn, number)`` on a thread per connection ``listener``
    accepts (counted in ``seen["connections"]``), ``seen`` with the server's URL yielded."""

    def serve():
        for conn in accepted(listener):
            seen["connections"] += 1
            threading.Thread(target=answer_on, args=(conn, seen["connections"]), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    seen["url"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    yield seen
    listener.close()


@pytest.fixture
def hangs_up_once():
    """A gateway that answers the first request, keeps the connection, then hangs up on
    the next request it reads there without answering; later connections are answered."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen = {"connections": 0, "requests": []}

    def answer_on(conn, first_connection):
        with conn:
            buffer, served = b"", 0
            while (request := read_request(conn, buffer)) is not None:
                head, _, buffer = request
                seen["requests"].append(head.split(b"\r\n")[0])
                if first_connection and served == 1:
                    return  # hang up with the request unanswered
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}')
                served += 1

    yield from _serving(listener, seen, lambda conn, number: answer_on(conn, number == 1))


def test_a_request_the_gateway_hung_up_on_is_sent_again_only_when_safe(hangs_up_once, fresh_connections):
    url = hangs_up_once["url"]
    assert sandbox._http_call("POST", f"{url}/v1/payments", form={"a": "1"}, headers={})[0] == 200
    # the kept connection is dropped with this request unanswered; it has a key: sent again
    status, _ = sandbox._http_call("POST", f"{url}/v1/payments", form={"a": "2"}, headers={}, retry_safe=True)
    assert status == 200
    assert hangs_up_once["requests"] == [b"POST /v1/payments HTTP/1.1"] * 3
    assert hangs_up_once["connections"] == 2


def test_a_write_without_a_key_is_not_sent_twice(hangs_up_once, fresh_connections):
    url = hangs_up_once["url"]
    assert sandbox._http_call("POST", f"{url}/v1/payments", form={"a": "1"}, headers={})[0] == 200
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        sandbox._http_call("POST", f"{url}/v1/payments", form={"a": "2"}, headers={}, retry_safe=False)
    assert len(hangs_up_once["requests"]) == 2 and hangs_up_once["connections"] == 1
    # the next call opens a new connection
    assert sandbox._http_call("GET", f"{url}/v1/payments/x", form=None, headers={})[0] == 200
    assert hangs_up_once["connections"] == 2


def _served(app):
    """The gateway's HTTP server around ``app`` on a free port, in a thread, until the test ends."""
    from sandbox_gateway.server import create_server

    app.close = lambda: None  # stop() closes the app's store; these apps have none
    server = create_server("127.0.0.1", 0, app=app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server
    server.stop()


@pytest.fixture
def echoing_server():
    """The gateway's HTTP server around a WSGI app that answers the environ's request
    fields as JSON: what the gateway's app sees of a request head."""
    import json

    class Echo:
        def __call__(self, environ, start_response):
            seen = {k: v for k, v in environ.items() if k.startswith("HTTP_") or k in (
                "CONTENT_TYPE", "CONTENT_LENGTH", "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL")}
            if environ.get("CONTENT_LENGTH"):
                seen["body"] = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])).decode()
            body = json.dumps(seen).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

    yield from _served(Echo())


def _exchange(server, request: bytes) -> bytes:
    """Everything the server sends for ``request`` until it closes the connection."""
    with socket.create_connection(server.server_address, timeout=5) as raw:
        raw.sendall(request)
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    return received


def test_the_request_head_reaches_the_app_as_wsgiref_gives_it(echoing_server):
    import json

    answer = _exchange(echoing_server, b"POST //v1/echo?x=1&y=%20 HTTP/1.1\r\nhost: gw\r\nX-Thing: one\r\n"
                                       b"x-thing:two  \r\nCONTENT-TYPE: application/x-www-form-urlencoded\r\n"
                                       b"Content-Length: 3\r\nAuthorization:Bearer k\r\nConnection: close\r\n\r\nabc")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body) == {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/v1/echo", "QUERY_STRING": "x=1&y=%20",
        "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "gw", "HTTP_X_THING": "one,two",  # repeated: joined
        "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": "3", "HTTP_AUTHORIZATION": "Bearer k",
        "HTTP_CONNECTION": "close", "body": "abc"}
    # no Content-Type: text/plain, as wsgiref says
    untyped = json.loads(_exchange(echoing_server, b"GET /v1/echo HTTP/1.0\r\n\r\n").partition(b"\r\n\r\n")[2])
    assert untyped["CONTENT_TYPE"] == "text/plain" and untyped["SERVER_PROTOCOL"] == "HTTP/1.0"


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /v1/echo\r\n\r\n", b"400"),  # no version (HTTP/0.9)
    (b"GET /v1/echo HTTQ/1.1\r\n\r\n", b"400"),
    (b"GET /v1/echo HTTP/2.0\r\n\r\n", b"505"),
    (b"GET /v1/echo HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n", b"400"),  # obs-fold
    (b"GET /v1/echo HTTP/1.1\r\nNo colon here\r\n\r\n", b"400"),
    (b"GET /v1/echo HTTP/1.1\r\nX-Space : a\r\n\r\n", b"400"),
    (b"GET /v1/echo HTTP/1.1\r\n: nameless\r\n\r\n", b"400"),
    (b"GET /v1/echo HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
    (b"GET /v1/echo HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(101)) + b"\r\n", b"431"),
])
def test_a_malformed_request_head_is_refused_and_the_connection_closed(echoing_server, request_bytes, status):
    answer = _exchange(echoing_server, request_bytes)  # returns only once the server closed
    # without a version it could answer in, the server sends the page alone (as HTTP/0.9)
    assert b"Error code: " + status in answer and b"HTTP_" not in answer, answer[:300]
    assert answer.startswith(b"HTTP/1.1 " + status) == (b"HTTP/1." in request_bytes.split(b"\r\n")[0]
                                                         and status != b"505")


def test_an_answer_carries_date_server_and_the_apps_headers_in_the_clients_version(echoing_server):
    from email.utils import parsedate_to_datetime

    for version in (b"HTTP/1.1", b"HTTP/1.0"):
        answer = _exchange(echoing_server, b"GET /v1/echo " + version + b"\r\nConnection: close\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        status, *lines = head.decode("iso-8859-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines)
        assert status == f"{version.decode()} 200 OK"
        assert abs(parsedate_to_datetime(fields["Date"]).timestamp() - time.time()) < 5
        assert fields["Server"].startswith("WSGIServer/") and fields["Content-Type"] == "application/json"
        assert int(fields["Content-Length"]) == len(body) > 0


@pytest.fixture
def failing_server():
    """The gateway's HTTP server around an app that fails, once before answering and once
    after start_response, and answers without a Content-Length otherwise."""

    class Failing:
        def __call__(self, environ, start_response):
            if environ["PATH_INFO"] == "/before":
                raise RuntimeError("broken before answering")
            start_response("200 OK", [("Content-Type", "text/plain")])
            if environ["PATH_INFO"] == "/after":
                raise RuntimeError("broken after start_response")
            return [b"no ", b"length"]

    yield from _served(Failing())


def test_an_app_that_fails_gets_a_500_and_a_closed_connection(failing_server, caplog):
    for path in (b"/before", b"/after"):
        # keep-alive asked for: the failure still ends the connection (_exchange reads to the close)
        answer = _exchange(failing_server, b"GET " + path + b" HTTP/1.1\r\nHost: gw\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 500 ") and body == b"A server error occurred."
        assert b"Content-Length: %d" % len(body) in head
    assert "broken before answering" in caplog.text and "broken after start_response" in caplog.text
    whole = _exchange(failing_server, b"GET /fine HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert whole.endswith(b"\r\n\r\nno length") and b"Content-Length: 9\r\n" in whole


def test_keep_alive_and_expect_100_continue_as_http_1_1_asks(echoing_server):
    with socket.create_connection(echoing_server.server_address, timeout=5) as raw:
        # 100 fields is the most a head may carry; HTTP/1.0 asking to keep the connection keeps it
        raw.sendall(b"GET /v1/echo HTTP/1.0\r\nConnection: keep-alive\r\n"
                    + b"".join(b"X-%d: v\r\n" % n for n in range(99)) + b"\r\n")
        head, body, rest = read_request(raw)
        assert head.startswith(b"HTTP/1.0 200") and b'"HTTP_X_98": "v"' in body
        raw.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        interim = raw.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        raw.sendall(b"ok")
        head, body, _ = read_request(raw, interim.partition(b"\r\n\r\n")[2] + rest)
        assert head.startswith(b"HTTP/1.1 200") and b'"CONTENT_LENGTH": "2"' in body


@pytest.fixture
def canned():
    """A server that answers every request on a connection with the next of
    ``canned["answers"]`` (bytes, sent as they are), counting connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen = {"connections": 0, "answers": [], "requests": []}

    def answer_on(conn):
        with conn:
            buffer = b""
            while (request := read_request(conn, buffer)) is not None:
                head, _, buffer = request
                seen["requests"].append(head)
                if not seen["answers"]:
                    return
                conn.sendall(seen["answers"].pop(0))

    yield from _serving(listener, seen, lambda conn, number: answer_on(conn))


def test_answers_of_every_shape_are_read_and_the_connection_kept_only_when_it_can_be(canned, fresh_connections):
    url = canned["url"]
    canned["answers"] = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}",  # interim skipped
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nA",  # HTTP/1.0 without keep-alive: closed after
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nB",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nCextra",  # bytes nobody asked for: not kept
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    ]
    calls = [sandbox._http_call("GET", f"{url}/v1/x?a=1", form=None, headers={"X-Call": str(n)}) for n in range(6)]
    assert calls == [(201, b"{}"), (200, b"abcde"), (200, b"A"), (200, b"B"), (200, b"C"), (404, b"")]
    assert canned["connections"] == 3  # new ones after the HTTP/1.0 answer and after the out-of-step one
    first = canned["requests"][0].decode()
    assert first.startswith("GET /v1/x?a=1 HTTP/1.1\r\n") and f"Host: 127.0.0.1:{url.rsplit(':', 1)[1]}" in first
    assert "Content-Length" not in first and "X-Call: 0" in first


def test_a_form_is_sent_with_its_length_and_type(canned, fresh_connections):
    canned["answers"] = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    assert sandbox._http_call("POST", f"{canned['url']}/v1/payments", form={"amount": 100, "note": "a b&c"},
                              headers={}) == (200, b"ok")
    head = canned["requests"][0].decode()
    assert "Content-Type: application/x-www-form-urlencoded" in head and "Content-Length: 23" in head


@pytest.mark.parametrize("answer", [
    b"SMTP ready\r\n\r\n",  # not HTTP
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",  # far larger than any gateway answer
])
def test_a_gateway_that_does_not_answer_in_http_is_a_retryable_payment_error(canned, fresh_connections, answer,
                                                                            monkeypatch):
    from plugins.payment import PaymentError
    from plugins.payments.sandbox.plugin import SandboxPaymentPlugin

    canned["answers"] = [answer]
    monkeypatch.setattr(SandboxPaymentPlugin, "gateway_url", canned["url"])
    monkeypatch.setattr(SandboxPaymentPlugin, "_api_key", lambda self: "sk_sandbox_" + "a" * 24)
    provider = SandboxPaymentPlugin.__new__(SandboxPaymentPlugin)
    with pytest.raises(PaymentError) as refused:
        provider._call("GET", "/v1/payments/pay_x")
    assert refused.value.retryable and "Could not talk" in str(refused.value)
    assert sandbox._kept_connections() == {}  # the connection was not kept


@pytest.mark.parametrize("form", [
    {"amount": 1500, "currency": "CNY", "reference": "261206-0001"},
    {"description": "Game card 100 × 2", "return_url": "https://shop.test/o/AB?t=1&x=2"},
    {"metadata[order]": "a b+c", "empty": "", "none": None, "flag": True, b"raw": b"b\xffytes"},
    {"dash-dot_tilde~": "A-Z.a_z~09", "percent": "100%", "slash": "/"},
])
def test_a_form_body_is_encoded_as_urlencode_encodes_it(form):
    from urllib.parse import urlencode

    from plugins.payments.sandbox.wire import form_body

    assert form_body(form) == urlencode(form).encode()


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.text(max_size=20), st.integers(), st.none()), max_size=6))
def test_any_form_body_is_encoded_as_urlencode_encodes_it(form):
    from urllib.parse import urlencode

    from plugins.payments.sandbox.wire import form_body

    assert form_body(form) == urlencode(form).encode()
