"""Storefront pages, rendered with the shop's theme from shop_templates/."""
from django.views.decorators.http import require_GET

from plugins import hooks
from shop_templates.loader import render_theme


@require_GET
def home(request):
    banners = hooks.collect("storefront_banners", request=request)
    return render_theme(request, "home.html", {"banners": banners})
