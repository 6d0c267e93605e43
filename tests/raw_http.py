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


def wait_until_serving(base_url: str, process, seconds: float) -> bool:
    """Poll ``base_url``/healthz until the server answers (any status: a 503 without a
    worker still answers); False when ``process`` ended or ``seconds`` passed first."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{base_url}/healthz", timeout=2)
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.2)
