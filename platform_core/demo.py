"""The demo data ``kameng up`` creates: a platform admin and the ``demo`` shop."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.conf import settings

DEMO_SLUG = "demo"


def _logins(state_dir: Path) -> dict[str, str]:
    path = state_dir / "demo-logins.json"
    if path.exists():
        return json.loads(path.read_text())
    logins = {
        "admin_email": f"admin@{settings.PLATFORM_DOMAIN if '.' in settings.PLATFORM_DOMAIN else 'kameng.local'}",
        "admin_password": secrets.token_urlsafe(9),
        "owner_email": "owner@demo.kameng.local",
        "owner_password": secrets.token_urlsafe(9),
    }
    path.write_text(json.dumps(logins, indent=2))
    path.chmod(0o600)
    return logins


def demo_ensure(state_dir: Path) -> dict[str, str]:
    from tenants.models import Merchant, Shop
    from tenants.services import shop_create

    logins = _logins(state_dir)
    if not Merchant.objects.filter(email__iexact=logins["admin_email"]).exists():
        Merchant.objects.create_superuser(logins["admin_email"], logins["admin_password"], name="Platform admin")
    if not Shop.objects.filter(slug=DEMO_SLUG).exists():
        owner = Merchant.objects.filter(email__iexact=logins["owner_email"]).first()
        if owner is None:
            owner = Merchant.objects.create_user(logins["owner_email"], logins["owner_password"], name="Demo owner")
        shop_create(slug=DEMO_SLUG, name="Demo Card Shop", owner=owner, language="zh-hans", sample_catalog=True)
    else:
        _top_up_older_demo(Shop.objects.get(slug=DEMO_SLUG))
    _demo_plan(Shop.objects.get(slug=DEMO_SLUG))
    return logins


def _demo_plan(shop) -> None:
    """The demo shows every feature and must never be invoiced or suspended: the
    Business plan, complimentary (docs/billing.md)."""
    from billing.services import subscription_make_complimentary

    subscription_make_complimentary(shop=shop, plan_code="business", reason="Demo shop")


def _top_up_older_demo(shop) -> None:
    """A demo shop made by an earlier version gets what newer ones start with."""
    from django_tenants.utils import tenant_context

    from platform_core.catalog.models import Product
    from platform_core.catalog.seeding import seed_sample_catalog
    from plugins.models import PluginConfig
    from tenants.seeding import seed_payment_methods

    with tenant_context(shop):
        if not PluginConfig.objects.filter(slug="sandbox").exists():
            seed_payment_methods(shop, sample_catalog=True)
        if not Product.objects.exists():
            seed_sample_catalog(shop, sample_catalog=True)
