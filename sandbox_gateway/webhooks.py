"""Delivering signed webhooks to a merchant's ``notify_url``.

Every attempt is signed with a fresh timestamp (a retry an hour later must still pass
the receiver's 5-minute tolerance); the body and the event id never change, so the
receiver de-duplicates on the id. Any 2xx answer counts as delivered; anything else
(including redirects, which are not followed) is retried with backoff."""
from __future__ import annotations

import logging
import sqlite3
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from sandbox_gateway.signing import HEADER, signature_header
from sandbox_gateway.store import Store

logger = logging.getLogger("sandbox_gateway.webhooks")

DEFAULT_RETRY_DELAYS = (2.0, 10.0, 30.0, 120.0, 600.0)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a webhook endpoint answers, it does not redirect
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def loopback_domains() -> tuple[str, ...]:
    raw = os.environ.get("SANDBOX_LOOPBACK_DOMAINS", "localhost")
    return tuple(d.strip().lower().lstrip(".") for d in raw.split(",") if d.strip())


def loopback_target(url: str) -> tuple[str, str]:
    """Shops of a local platform live on ``<slug>.localhost``, which browsers resolve to
    this machine but the system resolver may not (RFC 6761 allows either). For those
    names, connect to 127.0.0.1 and send the original host in the Host header."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if not any(host == d or host.endswith("." + d) for d in loopback_domains()):
        return url, ""
    netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), parts.netloc


@dataclass
class Delivery:
    delivered: bool
    status: int | None = None
    error: str = ""


class Deliverer:
    def __init__(self, store: Store, *, timeout: float = 5.0, retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS):
        self.store = store
        self.timeout = timeout
        self.retry_delays = tuple(retry_delays)
        self._stopping = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()

    def attempt(self, event_id: str) -> Delivery:
        """One signed POST of the stored event; records the attempt."""
        event = self.store.event(event_id)
        if event is None:
            return Delivery(False, error="no such event")
        merchant = self.store.merchant(event["merchant_id"])
        body = event["body"].encode()
        url, host_header = loopback_target(event["notify_url"])
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "KamengSandboxGateway/1.0",
            HEADER: signature_header(merchant["webhook_secret"], self.store.now(), body),
        }
        if host_header:
            headers["Host"] = host_header
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with _opener.open(request, timeout=self.timeout) as response:
                result = Delivery(200 <= response.status < 300, response.status)
        except urllib.error.HTTPError as exc:
            result = Delivery(False, exc.code, f"HTTP {exc.code}")
            exc.close()
        except (OSError, ValueError) as exc:  # refused, timed out, unresolvable, bad URL
            result = Delivery(False, error=f"{type(exc).__name__}: {exc}"[:300])
        try:
            self.store.event_attempted(event_id, delivered=result.delivered, error=result.error)
        except sqlite3.ProgrammingError:
            if not self._stopping.is_set():
                raise
            return result  # the gateway shut down while this attempt was on the wire
        if not result.delivered:
            logger.info("webhook %s to %s not delivered: %s", event_id, event["notify_url"], result.error)
        return result

    def deliver_now(self, event_id: str) -> Delivery:
        """Synchronously (the buyer waits on the pay page), then in the background on failure."""
        result = self.attempt(event_id)
        if not result.delivered:
            self._background(event_id, first_now=False)
        return result

    def deliver_later(self, event_id: str) -> None:
        """In the background only: the caller must not wait (e.g. a refund, whose
        webhook the shop can only process after the refund request returned)."""
        self._background(event_id, first_now=True)

    def _background(self, event_id: str, *, first_now: bool) -> None:
        thread = threading.Thread(target=self._retry_loop, args=(event_id, first_now), daemon=True,
                                  name=f"webhook-{event_id}")
        with self._threads_lock:
            self._threads.add(thread)
        thread.start()

    def _retry_loop(self, event_id: str, first_now: bool) -> None:
        try:
            delays = ((0.0,) if first_now else ()) + self.retry_delays
            for delay in delays:
                if self._stopping.wait(delay):
                    return
                if self.attempt(event_id).delivered:
                    return
            logger.warning("webhook %s gave up after %d attempts", event_id, len(delays) + (not first_now))
        except Exception:  # noqa: BLE001 - a background thread must log, not die silently
            logger.exception("webhook %s: delivery loop failed", event_id)
        finally:
            with self._threads_lock:
                self._threads.discard(threading.current_thread())

    def idle(self) -> bool:
        with self._threads_lock:
            return not self._threads

    def close(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        with self._threads_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
