"""What each web worker would otherwise do on its first requests, done once by the process
that loads the WSGI application: import the URLconfs (and with them every view), the
installed plugins and the Redis client library, load the translation catalogs, build the
URL reversers per language and compile the platform's and the themes' templates. Under uWSGI (and gunicorn with ``--preload``) that
process is the master, so every forked worker starts warm: a fresh worker's first
storefront page took ~0.3–0.5 s more than the next (the delivery benchmark's 1 s
maximum, after every restart). Nothing here connects to the database or Redis: a
connection must not be shared across the fork."""
from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def warm_up() -> None:
    from django.conf import settings
    from django.template import TemplateSyntaxError, engines
    from django.urls import get_resolver
    from django.utils import translation

    import redis  # noqa: F401 - Django's cache client imports it when it first connects

    from plugins.registry import installed_plugins

    installed_plugins()  # imports every plugin's module
    urlconfs = [settings.ROOT_URLCONF, getattr(settings, "PUBLIC_SCHEMA_URLCONF", settings.ROOT_URLCONF)]
    for urlconf in urlconfs:
        get_resolver(urlconf).url_patterns  # noqa: B018 - imports the URLconf and its views
    with translation.override(None):
        for code, _ in settings.LANGUAGES:
            translation.activate(code)  # loads the catalogs
            for urlconf in urlconfs:
                get_resolver(urlconf).reverse_dict  # noqa: B018 - reverse() builds it per language
    engine = engines["django"]
    for directory in engine.dirs:
        for path in sorted(Path(directory).rglob("*.html")):
            name = path.relative_to(directory).as_posix()
            try:
                engine.get_template(name)  # compiled once, kept by the cached loader
            except TemplateSyntaxError:  # a broken template fails where it is used, not here
                logger.exception("template %s does not compile", name)
