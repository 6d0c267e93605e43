"""Plain-socket HTTP for tests that play a server at the byte level (a broken gateway,
one that hangs up, canned answers)."""
from __future__ import annotations

import re
from collections.abc import Iterator


def accepted(listener) -> Iterator:
    """The connections ``listener`` accepts, until it is closed."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        yield conn


def read_request(conn, buffer: bytes = b"") -> tuple[bytes, bytes, bytes] | None:
    """One request read from ``conn`` after ``buffer``: (head, body by its Content-Length,
    what came after it); None when the client closed before a whole head."""
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(found.group(1)) if found else 0
    while len(rest) < length:
        rest += conn.recv(65536)
    return head, rest[:length], rest[length:]
