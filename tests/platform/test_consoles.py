"""Platform console: suspend / reactivate with a reason (audited); shop console pages."""
from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django_tenants.utils import tenant_context

from platform_core.audit.models import AuditEvent
from tenants.models import Shop


@pytest.fixture
def staff(alice):
    alice.is_staff = True
    alice.save()
    return alice


def test_suspend_asks_for_a_reason_then_shop_is_unavailable_and_reactivation_restores_it(
        platform_client, staff, bravo, shop_client, bob):
    platform_client.force_login(staff)
    changelist = "/console/tenants/shop/"
    ask = platform_client.post(changelist, {"action": "suspend", "_selected_action": [bravo.pk]})
    assert ask.status_code == 200 and b"Kept in the audit log" in ask.content
    no_reason = platform_client.post(changelist, {"action": "suspend", "_selected_action": [bravo.pk], "apply": "1",
                                                  "reason": ""})
    assert no_reason.status_code == 200
    assert Shop.objects.get(pk=bravo.pk).status == "trial"
    done = platform_client.post(changelist, {"action": "suspend", "_selected_action": [bravo.pk], "apply": "1",
                                             "reason": "unpaid invoice"})
    assert done.status_code == 302
    bravo.refresh_from_db()
    assert bravo.status == "suspended" and bravo.status_reason == "unpaid invoice"
    event = AuditEvent.objects.get(action="shop.status.suspended")
    assert event.actor_email == staff.email and event.reason == "unpaid invoice"
    assert event.data == {"from": "trial", "to": "suspended", "slug": "bravo"}

    storefront = Client(HTTP_HOST="bravo.kameng.test").get("/")
    assert storefront.status_code == 403 and b"is unavailable" in storefront.content
    api = shop_client(bravo, bob).get("/api/v1/plugins/")
    assert api.status_code == 403 and api.json()["code"] == "shop_unavailable"
    # the owner still reaches the console (to settle up)
    assert shop_client(bravo, bob).get("/manage/").status_code == 200

    platform_client.post(changelist, {"action": "reactivate", "_selected_action": [bravo.pk], "apply": "1",
                                      "reason": "paid"})
    assert Client(HTTP_HOST="bravo.kameng.test").get("/").status_code == 200


def test_console_lists_only_real_shops(platform_client, staff, db):
    platform_client.force_login(staff)
    page = platform_client.get("/console/tenants/shop/").content.decode()
    assert "alpha" in page and "spare_" not in page and "shop_template" not in page


def test_shop_settings_change_branding_and_language(shop_client, alpha, alice):
    client = shop_client(alpha, alice)
    bad = client.post("/manage/settings/", {"name": "Alpha", "language": "en", "currency": "C1Y",
                                            "primary_color": "#112233", "accent_color": "#000000"})
    assert bad.status_code == 200 and b"three-letter" in bad.content
    good = client.post("/manage/settings/", {"name": "Alpha Deluxe", "language": "zh-hans", "currency": "usd",
                                             "primary_color": "#112233", "accent_color": "#000000"})
    assert good.status_code == 302
    alpha.refresh_from_db()
    assert (alpha.name, alpha.language, alpha.currency, alpha.primary_color) == ("Alpha Deluxe", "zh-hans", "USD",
                                                                                  "#112233")
    home = Client(HTTP_HOST="alpha.kameng.test").get("/").content.decode()
    assert "Alpha Deluxe" in home and "--primary: #112233" in home and "付款后自动发货" in home
    assert "Instant delivery" in Client(HTTP_HOST="alpha.kameng.test").get("/?lang=en").content.decode()
    with tenant_context(alpha):
        assert AuditEvent.objects.filter(action="shop.settings_changed").exists()


def test_colours_are_constrained_in_the_database(alpha):
    with pytest.raises(IntegrityError), transaction.atomic():
        Shop.objects.filter(pk=alpha.pk).update(primary_color="red;}{x")


def test_audit_log_is_append_only_in_the_database(alpha):
    event = AuditEvent.objects.create(action="x")
    for statement in ("UPDATE audit_auditevent SET action = 'y'", "DELETE FROM audit_auditevent"):
        with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    with tenant_context(alpha):
        AuditEvent.objects.create(action="shop-side")
        with pytest.raises(Exception, match="append-only"), transaction.atomic():
            AuditEvent.objects.filter(action="shop-side").delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "x"


def test_team_add_and_remove_members(shop_client, alpha, alice, bob):
    from tenants.models import ShopMembership

    client = shop_client(alpha, alice)
    assert b"No Kameng account" in client.post("/manage/team/", {"email": "ghost@example.com", "role": "staff"}).content
    assert client.post("/manage/team/", {"email": "BOB@example.com", "role": "finance"}).status_code == 302
    membership = ShopMembership.objects.get(shop=alpha, merchant=bob)
    assert membership.role == "finance"
    # finance can look, not change
    assert shop_client(alpha, bob).get("/manage/team/").status_code == 200
    assert shop_client(alpha, bob).post("/manage/team/", {"remove": membership.pk}).status_code == 403
    # the last owner cannot be removed
    owner = ShopMembership.objects.get(shop=alpha, merchant=alice)
    assert b"at least one owner" in client.post("/manage/team/", {"remove": owner.pk}, follow=True).content
    client.post("/manage/team/", {"remove": membership.pk})
    assert not ShopMembership.objects.filter(pk=membership.pk).exists()


def test_api_token_page_creates_a_working_token(shop_client, alpha, alice):
    page = shop_client(alpha, alice).post("/manage/api-token/").content.decode()
    key = page.split('data-testid="token">')[1].split("<")[0]
    api = Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/shop/").json()["slug"] == "alpha"


def test_shop_members_sign_in_to_their_shop_console_with_a_password(alpha, bravo, shop_client, platform_client):
    from tenants.models import Merchant, ShopMembership

    owner = Merchant.objects.create_user("signin-owner@example.com", "a-long-password-1")
    ShopMembership.objects.create(shop=alpha, merchant=owner, role="owner")
    assert not owner.is_staff  # platform staff is another thing
    form = {"username": "signin-owner@example.com", "password": "a-long-password-1"}

    signed_in = shop_client(alpha).post("/manage/login/?next=/manage/", form)
    assert signed_in.status_code == 302 and signed_in["Location"] == "/manage/"
    other_shop = shop_client(bravo).post("/manage/login/?next=/manage/", form)
    assert other_shop.status_code == 200 and "member of this shop" in other_shop.content.decode()
    wrong = shop_client(alpha).post("/manage/login/?next=/manage/", {**form, "password": "nope-nope-nope"})
    assert wrong.status_code == 200
    # the platform console still wants platform staff
    console = platform_client.post("/console/login/?next=/console/", form)
    assert console.status_code == 200 and "staff account" in console.content.decode()
