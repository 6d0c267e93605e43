"""HTTP/1.1 as the shop speaks it to the sandbox gateway: one request's bytes, one
answer parsed from what arrived, and a kept connection that carries one exchange after
another. ``http.client`` cost ~170 µs of CPU per call here (its request building and
the ``email`` parser for the answer's head), this ~30 µs, on every checkout. Answers are
sized by Content-Length, chunked, or run to the end of the connection; 1xx interim
answers are skipped."""
from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Mapping
from urllib.parse import quote_plus

#: an answer larger than this is refused (the gateway's answers are a few KB)
MAX_ANSWER_BYTES = 1 << 20


class RemoteClosed(ConnectionResetError):
    """The other side closed the connection before a whole answer arrived."""


#: what ``quote_plus`` leaves as it is
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~-]*")


def form_body(form: Mapping) -> bytes:
    """``urlencode(form).encode()``, quoting only the names and values that need it
    (a checkout's dozen fields are mostly plain: ~40 µs less per payment)."""
    return "&".join(f"{_quoted(name)}={_quoted(value)}" for name, value in form.items()).encode()


def _quoted(item) -> str:
    if isinstance(item, bytes):
        return quote_plus(item)
    text = item if type(item) is str else str(item)
    return text if _UNQUOTED.fullmatch(text) else quote_plus(text)


def request_bytes(method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None = None) -> bytes:
    """The bytes of one HTTP/1.1 request (Content-Length when there is a body)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}",
             *([f"Content-Length: {len(body)}"] if body is not None else []),
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def parse_answer(buffer: bytes, *, at_end: bool = False) -> tuple[int, bytes, bytes, bool] | None:
    """One whole HTTP answer at the start of ``buffer``: (status, body, what follows, whether
    the server closes the connection), or None while more bytes are needed. The body is
    sized by Content-Length, chunked, or (``at_end``: the server closed) all that came.
    ValueError for bytes that are not an HTTP answer."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buffer) > MAX_ANSWER_BYTES:
            raise ValueError("answer head too long")
        return None
    status_line, *header_lines = buffer[:head_end].split(b"\r\n")
    version, _, rest_of_line = status_line.partition(b" ")
    if not version.startswith(b"HTTP/1.") or not rest_of_line[:3].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    status = int(rest_of_line[:3])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get(b"connection", b"").lower()
    closes = connection == b"close" or (version == b"HTTP/1.0" and connection != b"keep-alive")
    rest = buffer[head_end + 4:]
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts, position = [], 0
        while True:
            line_end = rest.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(rest[position:line_end].split(b";")[0], 16)
            if size == 0:
                trailers_end = rest.find(b"\r\n\r\n", line_end)
                if rest[line_end:line_end + 4] == b"\r\n\r\n":
                    trailers_end = line_end
                if trailers_end < 0:
                    return None
                return status, b"".join(parts), rest[trailers_end + 4:], closes
            if len(rest) < line_end + 2 + size + 2:
                return None
            parts.append(rest[line_end + 2:line_end + 2 + size])
            position = line_end + 2 + size + 2
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        if length > MAX_ANSWER_BYTES:
            raise ValueError("answer too long")
        if len(rest) < length:
            return None
        return status, rest[:length], rest[length:], closes
    if status in (204, 304) or 100 <= status < 200:
        return status, b"", rest, closes
    return (status, rest, b"", True) if at_end else None  # the body runs to the end of the connection


class KeptConnection:
    """A connection to one gateway that carries one exchange after another."""

    def __init__(self, scheme: str, host: str, port: int | None, *, connect_timeout: float, read_timeout: float):
        port = port or (443 if scheme == "https" else 80)
        self.host_header = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            sock.settimeout(read_timeout)
        except BaseException:
            sock.close()
            raise
        self.sock: socket.socket | None = sock

    def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send ``request``, read its answer: (status, body, whether the connection is
        done). ``RemoteClosed`` when the gateway hung up first, ``TimeoutError`` past
        the read timeout, ValueError for a malformed answer."""
        self.sock.sendall(request)
        received = b""
        while True:
            chunk = self.sock.recv(65536)
            received += chunk
            answer = parse_answer(received, at_end=not chunk)
            while answer is not None and 100 <= answer[0] < 200:  # interim: the real answer follows
                received = answer[2]
                answer = parse_answer(received, at_end=not chunk)
            if answer is not None:
                status, body, unasked, closes = answer
                return status, body, closes or not chunk or bool(unasked)  # bytes nobody asked for: out of step
            if not chunk:
                raise RemoteClosed("the gateway closed the connection before answering")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
