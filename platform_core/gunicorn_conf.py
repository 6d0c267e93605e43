"""What ``kameng web`` tells gunicorn in code rather than flags (``--config
python:platform_core.gunicorn_conf``)."""
from __future__ import annotations


def post_worker_init(worker) -> None:
    # a sync worker never runs an event loop: its connections may live in plain thread-locals
    from platform_core.handlers import keep_connections_per_thread

    keep_connections_per_thread()
