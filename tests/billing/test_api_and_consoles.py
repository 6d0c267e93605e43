"""Billing through the shop API, the platform API and the two consoles."""
from __future__ import annotations

from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.metering import usage_meter_day
from billing.models import Subscription
from platform_core.catalog import services as catalog
from tests.api.test_commerce_api import api, post
from tests.billing.helpers import put_on_plan
from tests.billing.test_invoices import _issue
from tests.conftest import PASSWORD


def test_shop_api_overview_plan_change_and_refusals(alpha, bravo, alice, bob):
    client = api(alpha, alice)
    overview = client.get("/api/v1/billing/").json()
    assert overview["subscription"]["plan"]["code"] == "pro" and overview["subscription"]["status"] == "trial"
    assert {row["limit"]: row["allowed"] for row in overview["usage"]} == {
        "products": 500, "staff_seats": 5, "custom_domains": 1, "monthly_orders": 5000}
    assert [p["code"] for p in overview["plans"]] == ["free", "pro", "business"]

    bad = post(client, "/api/v1/billing/plan/", {"plan": "platinum"})
    assert bad.status_code == 404 and bad.json()["code"] == "unknown_plan"
    same = post(client, "/api/v1/billing/plan/", {"plan": "pro"})
    assert same.status_code == 400 and same.json()["code"] == "same_plan"
    changed = post(client, "/api/v1/billing/plan/", {"plan": "business"})
    assert changed.status_code == 200 and changed.json()["plan"]["code"] == "business"
    assert post(client, "/api/v1/billing/cancel/").json()["cancel_at_period_end"] is True
    assert client.delete("/api/v1/billing/cancel/").json()["cancel_at_period_end"] is False
    # bob is no member of alpha
    assert api(alpha, bob).get("/api/v1/billing/").status_code == 403
    assert api(bravo, bob).get("/api/v1/billing/").json()["subscription"]["plan"]["code"] == "pro"


def test_downgrade_over_the_new_limits_is_refused_and_nothing_changes(alpha, alice):
    with tenant_context(alpha):
        for n in range(21):
            catalog.product_create(name=f"Card {n}")
    response = post(api(alpha, alice), "/api/v1/billing/plan/", {"plan": "free"})
    assert response.status_code == 409 and response.json()["code"] == "over_limit"
    assert "21 products (the Free plan allows 20)" in response.json()["detail"]
    assert Subscription.objects.get(shop=alpha).plan.code == "pro"


def test_product_over_the_limit_through_the_api_is_a_403_naming_the_plan(alpha, alice):
    put_on_plan(alpha, "free")
    with tenant_context(alpha):
        for n in range(20):
            catalog.product_create(name=f"Card {n}")
    response = post(api(alpha, alice), "/api/v1/products/", {"name": "One more"})
    assert response.status_code == 403 and response.json()["code"] == "plan_limit"
    assert "The Pro plan allows 500" in response.json()["detail"]


def test_invoices_in_the_api_are_the_shops_own(alpha, bravo, alice, bob):
    invoice = _issue(alpha)
    listing = api(alpha, alice).get("/api/v1/billing/invoices/").json()
    assert [(i["number"], i["total"], i["amount_due"]) for i in listing] == [(invoice.number, 9900, 9900)]
    assert api(bravo, bob).get("/api/v1/billing/invoices/").json() == []
    assert api(bravo, bob).get(f"/api/v1/billing/invoices/{invoice.pk}/download/").status_code == 404
    link = api(alpha, alice).get(f"/api/v1/billing/invoices/{invoice.pk}/download/").json()["url"]
    assert "/manage/billing/file/" in link


def test_suspended_shop_api_is_closed_except_billing(alpha, alice):
    put_on_plan(alpha, "pro", status="suspended")
    alpha.status = "suspended"
    alpha.save()
    client = api(alpha, alice)
    assert client.get("/api/v1/products/").status_code == 403
    assert client.get("/api/v1/billing/").status_code == 200


def test_cancel_at_period_end_via_the_console(alpha, alice, shop_client):
    client = shop_client(alpha, alice)
    client.post("/manage/billing/cancel/")
    client.post("/manage/billing/cancel/")  # double click: one request recorded
    sub = Subscription.objects.get(shop=alpha)
    assert sub.cancel_at_period_end and sub.status == "trial"
    assert sub.events.filter(kind="subscription.cancel_requested").count() == 1
    page = client.get("/manage/billing/").content.decode()
    assert "ends at the end of this month" in page
    client.post("/manage/billing/cancel/", {"resume": "1"})
    assert not Subscription.objects.get(shop=alpha).cancel_at_period_end


def test_console_change_plan_shows_usage_and_plan(alpha, alice, shop_client):
    client = shop_client(alpha, alice)
    page = client.get("/manage/billing/").content.decode()
    assert 'data-plan="pro"' in page and 'data-limit="products"' in page
    usage_meter_day(shop=alpha, day=timezone.localdate())
    assert f'data-usage-day="{timezone.localdate():%Y-%m-%d}"' in client.get("/manage/billing/").content.decode()
    assert client.post("/manage/billing/plan/", {"plan": "business"}).status_code == 302
    assert 'data-plan="business"' in client.get("/manage/billing/").content.decode()


def test_platform_revenue_dashboard_and_api(alpha, bravo, db):
    from tenants.models import Merchant

    admin = Merchant.objects.create_superuser("root@example.com", PASSWORD)
    Subscription.objects.filter(shop=alpha).update(status="active")  # alpha pays for Pro: MRR 99.00
    usage_meter_day(shop=alpha, day=timezone.localdate())
    client = Client(HTTP_HOST="kameng.test")
    client.force_login(admin)
    page = client.get("/console/revenue/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-count="active">1<' in html and 'data-count="trialing">1<' in html and "¥99.00" in html
    revenue = client.get("/api/v1/billing/revenue/").json()
    assert revenue["mrr"] == {"CNY": 9900} and revenue["counts"]["active"] == 1
    assert revenue["invoiced"] == {} and revenue["collected"] == {}
    for url in ("/console/billing/plan/", "/console/billing/subscription/", "/console/billing/invoice/"):
        assert client.get(url).status_code == 200, url
    # plans are public, revenue is for platform staff only
    assert Client(HTTP_HOST="kameng.test").get("/api/v1/plans/").status_code == 200
    outsider = Client(HTTP_HOST="kameng.test")
    outsider.force_login(Merchant.objects.get(email="alice@example.com"))
    assert outsider.get("/api/v1/billing/revenue/").status_code == 403
    assert outsider.get("/console/revenue/").status_code == 302  # to the console login


def test_platform_console_creates_a_plan_and_refuses_bad_features(db):
    from billing.models import Plan
    from platform_core.audit.models import AuditEvent
    from tenants.models import Merchant

    admin = Merchant.objects.create_superuser("root@example.com", PASSWORD)
    client = Client(HTTP_HOST="kameng.test")
    client.force_login(admin)
    form = {"code": "starter", "name": "Starter", "monthly_fee": "4900", "currency": "CNY", "commission_bp": "200",
            "max_products": "50", "max_staff_seats": "2", "max_custom_domains": "0", "max_monthly_orders": "",
            "features": '"everything"', "trial_days": "7", "sort_order": "1", "is_active": "on"}
    refused = client.post("/console/billing/plan/add/", form)
    assert refused.status_code == 200 and not Plan.objects.filter(code="starter").exists()
    form["features"] = '["plugins.payment"]'
    assert client.post("/console/billing/plan/add/", form).status_code == 302
    plan = Plan.objects.get(code="starter")
    assert (plan.monthly_fee, plan.max_monthly_orders, plan.features) == (4900, None, ["plugins.payment"])
    assert AuditEvent.objects.filter(action="billing.plan_created").exists()
    form["commission_bp"] = "10001"  # over 100 %: the database constraint's check in the form
    assert client.post(f"/console/billing/plan/{plan.pk}/change/", form).status_code == 200
    assert Plan.objects.get(code="starter").commission_bp == 200


def test_gateway_webhook_refuses_unsigned_and_ignores_unknown_payments(db, settings):
    settings.KAMENG_BILLING_SANDBOX_KEY = "sk_sandbox_platformbilling0001"
    client = Client(HTTP_HOST="kameng.test")
    assert client.post("/billing/hooks/sandbox/", b"{}", content_type="application/json").status_code == 400
    import json
    import time

    from sandbox_gateway import signature_header, webhook_secret_for

    body = json.dumps({"id": "evt_1", "type": "payment.succeeded", "created": int(time.time()), "data": {"object": {
        "id": "pay_abc", "reference": "999999", "amount": 100, "currency": "CNY"}}})
    header = signature_header(webhook_secret_for(settings.KAMENG_BILLING_SANDBOX_KEY), int(time.time()), body.encode())
    response = client.post("/billing/hooks/sandbox/", body, content_type="application/json",
                           headers={"Sandbox-Signature": header})
    assert response.status_code == 200 and response.content == b"unknown payment"


def test_platform_console_issues_a_credit_note(alpha, db):
    from billing.models import Invoice
    from tenants.models import Merchant

    invoice = _issue(alpha)
    admin = Merchant.objects.create_superuser("root@example.com", PASSWORD)
    client = Client(HTTP_HOST="kameng.test")
    client.force_login(admin)
    page = client.get(f"/console/billing/invoice/{invoice.pk}/change/")
    assert page.status_code == 200 and b"Issue a credit note" in page.content and b"/console/billing/file/" in page.content
    sub = Subscription.objects.get(shop=alpha)
    assert b"subscription.started" in client.get(f"/console/billing/subscription/{sub.pk}/change/").content
    url = f"/console/billing/invoice/{invoice.pk}/credit/"
    assert b"at most 2 decimals" in client.post(url, {"amount": "1.234", "reason": "x"}).content
    assert b"can still be credited" in client.post(url, {"amount": "100.00", "reason": "x"}).content
    assert client.post(url, {"amount": "20.00", "reason": "outage"}).status_code == 302
    note = Invoice.objects.get(kind="credit_note")
    assert (note.total, note.credits_id) == (-2000, invoice.pk)
    # shops and non-staff cannot reach it
    alice = Merchant.objects.get(email="alice@example.com")
    other = Client(HTTP_HOST="kameng.test")
    other.force_login(alice)
    assert other.post(url, {"amount": "1.00", "reason": "x"}).status_code == 302  # to the login page
    assert Invoice.objects.filter(kind="credit_note").count() == 1


def test_platform_api_creates_plans_for_staff_only(db):
    from rest_framework.authtoken.models import Token

    from billing.models import Plan
    from tenants.models import Merchant

    admin = Merchant.objects.create_superuser("root@example.com", PASSWORD)
    staff = Client(HTTP_HOST="kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")
    body = {"code": "starter", "name": "Starter", "monthly_fee": 4900, "commission_bp": 200, "max_products": 50,
            "features": ["plugins.payment"]}
    assert post(staff, "/api/v1/plans/", {**body, "monthly_fee": -1}).status_code == 400
    assert post(staff, "/api/v1/plans/", {**body, "features": ["everything"]}).json()["field"] == "features"
    created = post(staff, "/api/v1/plans/", body)
    assert created.status_code == 201 and created.json()["max_staff_seats"] is None
    assert post(staff, "/api/v1/plans/", body).status_code == 409
    alice = Merchant.objects.get(email="alice@example.com")
    shopper = Client(HTTP_HOST="kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    assert post(shopper, "/api/v1/plans/", {**body, "code": "x"}).status_code == 403
    assert Plan.objects.filter(code__in=["starter", "x"]).count() == 1


def test_staff_role_sees_plan_but_not_invoices_in_the_api(alpha, bob):
    from tenants.models import ShopMembership

    invoice = _issue(alpha)
    ShopMembership.objects.create(shop=alpha, merchant=bob, role="staff")
    client = api(alpha, bob)
    assert client.get("/api/v1/billing/").status_code == 200
    assert client.get("/api/v1/billing/invoices/").status_code == 403
    assert client.get(f"/api/v1/billing/invoices/{invoice.pk}/download/").status_code == 403
    assert post(client, f"/api/v1/billing/invoices/{invoice.pk}/pay/").status_code == 403
    assert post(client, "/api/v1/billing/plan/", {"plan": "business"}).status_code == 403
