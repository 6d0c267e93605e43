"""The WSGI application: Django's handler, with a shorter middleware chain for requests
that carry no browser session (platform_core/handlers.py), loaded warm
(platform_core/warmup.py)."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings")

import django  # noqa: E402 - the settings module must be named first

django.setup(set_prefix=False)

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

from platform_core.handlers import HandlerPerRequestKind  # noqa: E402

from platform_core.warmup import warm_up  # noqa: E402

application = HandlerPerRequestKind(WSGIHandler)
warm_up()
