"""In a real browser on a phone-sized screen: a buyer picks a product in a shop that
started with the sample catalog, pays on the sandbox gateway's page and sees the key."""
from __future__ import annotations

import re

import pytest
from django.conf import settings

pytestmark = pytest.mark.browser


@pytest.fixture
def sample_shop(committed_cleanup):
    from tenants.models import Merchant
    from tenants.services import shop_create

    owner = Merchant.objects.create_user("owner@shop-e2e.example.com", None)
    return shop_create(slug="buyme", name="Buy Me Cards", owner=owner, language="en", sample_catalog=True).shop


def test_buyer_buys_a_key_with_the_sandbox_gateway_on_a_phone(web_server, browser, sample_shop):
    from django_tenants.utils import tenant_context

    from platform_core.catalog.models import SKU

    with tenant_context(sample_shop):
        sku = SKU.objects.filter(product__type="card_key", available_count__gt=0).order_by("id").first()
        available_before = sku.available_count
    base = f"http://buyme.{settings.PLATFORM_DOMAIN}:{web_server}"
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{base}/?lang=en")
    page.click(f"a[href='/p/{sku.product_id}/']")
    page.wait_for_url(re.compile(rf".*/p/{sku.product_id}/.*"))
    page.fill("input[name=contact]", "buyer@example.com")
    page.fill("input[name=query_password]", "4321")
    if page.locator("input[name=payment][value=sandbox]").count():
        page.check("input[name=payment][value=sandbox]")
    page.click("button[type=submit]")
    # the sandbox gateway's hosted page
    page.wait_for_selector("#pay")
    page.screenshot(path="/tmp/kameng-e2e-paypage.png")
    page.click("#pay")
    page.wait_for_url(re.compile(r".*/order/.*"))
    key = page.wait_for_selector("text=/DEMO\\d+-[0-9A-F]{8}-[0-9A-F]{8}/", timeout=5000)
    assert key.is_visible()
    page.screenshot(path="/tmp/kameng-e2e-delivered.png")
    with tenant_context(sample_shop):
        sku.refresh_from_db()
        assert sku.available_count == available_before - 1 and sku.sold_count == 1
    context.close()
