"""Which middleware chain a request takes: the full one, the shorter one for requests
that carry no browser session, or the shortest for gateways' webhooks
(docs/decisions/0043-sessionless-requests.md). Used by
the WSGI application and, so that tests take the same chains, by the test client."""
from __future__ import annotations

import functools
import threading

from django.conf import settings
from django.urls import ResolverMatch, get_resolver, set_urlconf
from django.utils import translation

#: building a chain swaps settings.MIDDLEWARE for a moment: one build at a time (test
#: clients may be made on several threads)
_building = threading.Lock()


def request_kind(environ) -> str:
    """Which chain a request takes: ``"gateway"`` for gateways' webhooks (``/hooks/``:
    no session, no language, no slash redirect, no frame options), ``"sessionless"`` for
    API calls authenticated by a token (no session, CSRF cookie, messages or htmx
    headers), ``"full"`` for the rest. An API call without a token may be the console's
    own (session authentication), so it takes the full chain."""
    path = environ.get("PATH_INFO", "")
    if path.startswith("/hooks/"):
        return "gateway"
    if path.startswith("/api/") and environ.get("HTTP_AUTHORIZATION", "").startswith("Token "):
        return "sessionless"
    return "full"


def is_sessionless(environ) -> bool:
    """The request reads no session (a webhook, or a token API call)."""
    return request_kind(environ) != "full"


class DefaultLanguageMiddleware:
    """In the gateways' chain, in place of ``LocaleMiddleware``: the platform's default
    language for every webhook, whatever the previous request on this thread activated
    (nothing a gateway gets is translated, but a webhook's work must not depend on who
    came before), without reading the request's language preferences."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        translation.activate(settings.LANGUAGE_CODE)
        return self.get_response(request)


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


@functools.cache  # one class per handler class and chain, however many handlers are made
def with_chain(handler_class, setting: str):
    """``handler_class`` building its chain from ``settings.<setting>`` (e.g.
    ``SESSIONLESS_MIDDLEWARE``) instead of ``settings.MIDDLEWARE``."""

    class WithChain(handler_class):
        def load_middleware(self, is_async=False):
            full = settings.MIDDLEWARE
            settings.MIDDLEWARE = getattr(settings, setting)  # only while the chain is built
            try:
                super().load_middleware(is_async)
            finally:
                settings.MIDDLEWARE = full

    name = "".join(part.title() for part in setting.split("_")[:-1])
    WithChain.__name__ = WithChain.__qualname__ = f"{name}{handler_class.__name__}"
    return WithChain


class HandlerPerRequestKind:
    """Three Django handlers of one class — the full chain, the sessionless one and the
    gateways' — and each request goes to the one ``request_kind`` names. Each handler
    keeps its own view, exception and template-response middleware, as Django expects."""

    def __init__(self, handler_class, *args, **kwargs):
        handler_class = remembering_routes(handler_class)
        with _building:
            self.handlers = {
                "full": handler_class(*args, **kwargs),
                "sessionless": with_chain(handler_class, "SESSIONLESS_MIDDLEWARE")(*args, **kwargs),
                "gateway": with_chain(handler_class, "GATEWAY_MIDDLEWARE")(*args, **kwargs),
            }

    def __call__(self, environ, *args):
        return self.handlers[request_kind(environ)](environ, *args)


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
