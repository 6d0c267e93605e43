"""``kameng web`` under uWSGI (docs/decisions/0046-uwsgi-serves-the-web.md): the WSGI
application, and what each worker does once forked: keep its database and cache
connections in plain thread-locals, as ``gunicorn_conf.post_worker_init`` does."""
from __future__ import annotations

from platform_core.handlers import keep_connections_per_thread
from platform_core.wsgi import application

__all__ = ["application"]

try:
    import uwsgi  # the server's own module: present only inside a uWSGI process
except ImportError:
    uwsgi = None

if uwsgi is not None:
    uwsgi.post_fork_hook = keep_connections_per_thread
