"""Find installed plugin apps before Django starts (used by settings).

*Installed* means: listed as a built-in in settings, or published by any installed
distribution under the ``kameng.plugins`` entry-point group (value: the module of a
Django app). *Enabled* is a per-shop decision stored in that shop's schema.
"""
from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "kameng.plugins"


def discover_plugin_apps(builtin: list[str], *, exclude: list[str] = ()) -> list[str]:
    found = list(builtin)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        module = entry.value.split(":", 1)[0]
        if module not in found:
            found.append(module)
    return [module for module in found if module not in set(exclude)]
