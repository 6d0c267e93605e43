"""In a real browser: an entrepreneur signs up and lands in the console of a live shop."""
from __future__ import annotations

import time

import pytest
from django.conf import settings

from tenants.models import Shop

pytestmark = pytest.mark.browser


def test_signup_to_live_shop_console_in_a_browser(web_server, browser, committed_cleanup):
    domain, port = settings.PLATFORM_DOMAIN, web_server
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"http://{domain}:{port}/")
    page.click("text=Open a shop")
    page.fill("#id_email", "founder@example.com")
    page.fill("#id_password", "a-long-enough-passphrase")
    page.fill("#id_shop_name", "Papa Cards")
    page.fill("#id_slug", "papa")
    page.select_option("#id_language", "en")
    started = time.monotonic()
    page.click("button[type=submit]")
    page.wait_for_url(f"http://papa.{domain}:{port}/manage/")
    elapsed = time.monotonic() - started
    assert page.locator("h2", has_text="Papa Cards").is_visible()
    page.screenshot(path="/tmp/kameng-console-mobile.png")
    assert page.inner_text("[data-testid=shop-status]") == "trial"
    # the storefront of the new shop is live
    store = browser.new_page()
    store.goto(f"http://papa.{domain}:{port}/")
    assert store.inner_text("h1") == "Papa Cards"
    assert Shop.objects.get(slug="papa").status == "trial"
    print(f"signup to console: {elapsed:.2f} s")  # reported, not asserted (noisy machines)
    # a bad slug is explained on the form
    page.goto(f"http://{domain}:{port}/signup/")
    page.fill("#id_email", "second@example.com")
    page.fill("#id_password", "a-long-enough-passphrase")
    page.fill("#id_shop_name", "Again")
    page.fill("#id_slug", "papa")
    page.click("button[type=submit]")
    assert page.is_visible("text=is already taken")
