"""Theme loader: finds a shop's theme and renders its templates with shop branding."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from django.template.response import TemplateResponse
from django.utils import translation

THEMES_DIR = Path(__file__).resolve().parent
DEFAULT_THEME = "default"


@lru_cache(maxsize=None)
def available_themes() -> dict[str, dict]:
    themes = {}
    for manifest in sorted(THEMES_DIR.glob("*/theme.json")):
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        meta.setdefault("slug", manifest.parent.name)
        themes[manifest.parent.name] = meta
    return themes


def theme_template(theme: str, name: str) -> list[str]:
    """Template names to try: the shop's theme first, then the default theme."""
    names = []
    if theme in available_themes():
        names.append(f"{theme}/templates/{name}")
    names.append(f"{DEFAULT_THEME}/templates/{name}")
    return names


def render_theme(request, name: str, context: dict | None = None, status: int = 200) -> TemplateResponse:
    shop = request.tenant
    theme = getattr(shop, "theme", DEFAULT_THEME)
    language = request.GET.get("lang") or request.COOKIES.get("django_language") or shop.language
    if language not in ("en", "zh-hans"):
        language = shop.language
    translation.activate(language)
    request.LANGUAGE_CODE = language
    base = {"shop": shop, "theme": available_themes().get(theme, available_themes()[DEFAULT_THEME]),
            "theme_static": f"themes/{theme if theme in available_themes() else DEFAULT_THEME}/"}
    return TemplateResponse(request, theme_template(theme, name), {**base, **(context or {})}, status=status)
