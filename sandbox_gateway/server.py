"""Serving the gateway: a threading WSGI server (stdlib), in the foreground or in a
thread for tests."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sandbox_gateway.app import GatewayApp
from sandbox_gateway.store import Store
from sandbox_gateway.webhooks import DEFAULT_RETRY_DELAYS, Deliverer

logger = logging.getLogger("sandbox_gateway.http")


def default_db_path() -> Path:
    return Path(os.environ.get("KAMENG_STATE_DIR", ".kameng")) / "sandbox-gateway.sqlite3"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # access log through logging, not raw stderr
        logger.info("%s %s", self.address_string(), format % args)


class GatewayServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # parallel tests and replays open many connections at once

    app: GatewayApp
    _cleanup: str | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving, wait for background webhooks to give up, close the database."""
        self.shutdown()
        self.server_close()
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
