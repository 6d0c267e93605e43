"""Loading the WSGI application warms the process (platform_core/warmup.py): under uWSGI
that process is the master, and every worker it forks starts with the URLconfs, plugins,
translations and templates loaded — and with no database or Redis connection, which
must not be shared across the fork."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import platform_core.wsgi  # what uWSGI's master loads
from django.core.cache import caches
from django.db import connections
from django.template import engines
from django.utils.translation import trans_real

loader = engines["django"].engine.template_loaders[0]
print(json.dumps({
    "modules": [name for name in ("platform_core.urls_shop", "platform_core.urls_public", "api.commerce_views",
                                  "plugins.payments.sandbox.plugin", "redis") if name in sys.modules],
    "database_connected": connections["default"].connection is not None,
    "cache_client_made": "_cache" in caches["default"].__dict__,
    "catalogs": sorted(trans_real._translations),
    "templates": sorted(getattr(loader, "get_template_cache", {})),
}))
"""


def test_loading_the_wsgi_application_warms_the_process_without_connecting():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "platform_core.settings_test"}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["modules"] == ["platform_core.urls_shop", "platform_core.urls_public", "api.commerce_views",
                               "plugins.payments.sandbox.plugin", "redis"]
    assert not seen["database_connected"] and not seen["cache_client_made"]
    assert {"en", "zh-hans"} <= set(seen["catalogs"])
    # the storefront's pages and the platform's own, compiled once here
    assert "default/templates/home.html" in seen["templates"], seen["templates"]
    assert any(name.startswith("kameng/") for name in seen["templates"]), seen["templates"]
