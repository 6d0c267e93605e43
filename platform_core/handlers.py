"""Which middleware chain a request takes: the full one, or the shorter one for requests
that carry no browser session (docs/decisions/0043-sessionless-requests.md). Used by
the WSGI application and, so that tests take the same chains, by the test client."""
from __future__ import annotations

import functools
import threading

from django.conf import settings
from django.urls import ResolverMatch, get_resolver, set_urlconf

#: building a chain swaps settings.MIDDLEWARE for a moment: one build at a time (test
#: clients may be made on several threads)
_building = threading.Lock()


def is_sessionless(environ) -> bool:
    """Gateways' webhooks, and API calls authenticated by a token: neither reads a
    session, a CSRF cookie, messages or htmx headers. An API call without a token may
    be the console's own (session authentication), so it takes the full chain."""
    path = environ.get("PATH_INFO", "")
    if path.startswith("/hooks/"):
        return True
    return path.startswith("/api/") and environ.get("HTTP_AUTHORIZATION", "").startswith("Token ")


@functools.lru_cache(maxsize=2048)
def _resolved(resolver, path: str):
    # keyed by the resolver object: clear_url_caches() (a changed ROOT_URLCONF) makes a
    # new one. A Resolver404 is raised again each time, so probing for paths fills nothing.
    return resolver.resolve(path)


@functools.cache
def remembering_routes(handler_class):
    """``handler_class`` resolving each path once per process (at most 2,048 remembered):
    matching a request against every pattern of the shop's URLconf was ~2.5 % of the web
    workers' CPU. The URLconfs are static (no patterns that depend on the language or
    anything else outside the path); each request gets its own copy of the match."""

    class RememberingRoutes(handler_class):
        def resolve_request(self, request):
            if hasattr(request, "urlconf"):  # as Django's own
                set_urlconf(request.urlconf)
                resolver = get_resolver(request.urlconf)
            else:
                resolver = get_resolver()
            remembered = _resolved(resolver, request.path_info)
            match = ResolverMatch.__new__(ResolverMatch)  # a copy (it refuses copy.copy)
            match.__dict__.update(remembered.__dict__)
            match.kwargs = dict(remembered.kwargs)  # the view middleware may change them: not the remembered ones
            request.resolver_match = match
            return match

    RememberingRoutes.__name__ = RememberingRoutes.__qualname__ = f"RememberingRoutes{handler_class.__name__}"
    return RememberingRoutes


@functools.cache  # one class per handler class, however many handlers are made
def sessionless(handler_class):
    """``handler_class`` building its chain from ``settings.SESSIONLESS_MIDDLEWARE``."""

    class Sessionless(handler_class):
        def load_middleware(self, is_async=False):
            full = settings.MIDDLEWARE
            settings.MIDDLEWARE = settings.SESSIONLESS_MIDDLEWARE  # only while the chain is built
            try:
                super().load_middleware(is_async)
            finally:
                settings.MIDDLEWARE = full

    Sessionless.__name__ = Sessionless.__qualname__ = f"Sessionless{handler_class.__name__}"
    return Sessionless


class HandlerPerRequestKind:
    """Two Django handlers of one class, the full chain and the sessionless one; each
    request goes to the one ``is_sessionless`` names. Each handler keeps its own view,
    exception and template-response middleware, as Django expects."""

    def __init__(self, handler_class, *args, **kwargs):
        handler_class = remembering_routes(handler_class)
        with _building:
            self.full = handler_class(*args, **kwargs)
            self.sessionless = sessionless(handler_class)(*args, **kwargs)

    def __call__(self, environ, *args):
        handler = self.sessionless if is_sessionless(environ) else self.full
        return handler(environ, *args)


def keep_connections_per_thread() -> None:
    """For a WSGI process, whose sync workers never run an event loop: Django keeps its
    database and cache connections in asgiref Locals, and every lookup (each
    ``connection.…``, each cache call) asks asyncio for a running loop, which in a sync
    thread raises and catches an exception: ~3 % of a web worker's CPU. Outside an event
    loop those Locals are exactly a ``threading.local``, so a process that never runs one
    can use that. Connections already made stay with the thread that made them."""
    from django.core.cache import caches
    from django.db import connections

    for handler in (connections, caches):
        made = handler._connections
        per_thread = threading.local()
        for alias in handler.settings:
            try:
                setattr(per_thread, alias, getattr(made, alias))
            except AttributeError:
                continue  # not made yet: made on first use, in the thread that uses it
        handler._connections = per_thread
