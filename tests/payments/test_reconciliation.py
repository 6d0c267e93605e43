"""Reconciliation (对账) against the real sandbox gateway's settlement report: every
kind of mismatch is seeded the way it happens in life, found, and fixed or dismissed
with an audit trail; running a day again keeps the decisions taken."""
from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from platform_core.audit.models import AuditEvent
from platform_core.orders.models import Order
from platform_core.payments.models import Payment, ReconciliationItem, ReconciliationRun
from platform_core.payments.reconciliation import (
    ReconciliationError,
    reconcilable_providers,
    reconcile_day,
    reconcile_yesterday,
    reconciliation_dismiss,
    reconciliation_fix,
)
from tests.payments.conftest import make_stock, place_order
from tests.payments.test_sandbox import click, start_sandbox_payment

Kind = ReconciliationItem.Kind


def refund_at_gateway(gateway, api_key, external_id, amount):
    """A refund made in the gateway's own dashboard, not through Kameng."""
    response = requests.post(f"{gateway.base}/v1/payments/{external_id}/refunds", data={"amount": amount},
                             headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["id"]


@pytest.fixture
def seeded(sandbox_shop, gateway, api_key, bridge):
    """One payment of each story, all today: matched, webhook lost, refunded at the gateway,
    amount tampered in Kameng, and a 'paid' payment the gateway never saw."""
    _, _, matched_order, matched, action = start_sandbox_payment(sandbox_shop, bridge)
    bridge.call(lambda: click(action.url))
    _, _, refunded_order, refunded, action = start_sandbox_payment(sandbox_shop, bridge)
    bridge.call(lambda: click(action.url))
    _, _, tampered_order, tampered, action = start_sandbox_payment(sandbox_shop, bridge)
    bridge.call(lambda: click(action.url))
    _, _, lost_order, lost, action = start_sandbox_payment(sandbox_shop, bridge)
    bridge.close()  # from here on the shop is unreachable for the gateway's webhooks
    assert click(action.url).status_code == 303
    refunded.refresh_from_db()
    refund_id = refund_at_gateway(gateway, api_key, refunded.external_id, 500)
    Payment.objects.filter(pk=tampered.pk).update(amount=1900)
    sku, _ = make_stock(sandbox_shop, keys=1)
    forged_order = place_order(sku, quantity=1)
    forged = Payment.objects.create(order=forged_order, provider="sandbox", amount=forged_order.total,
                                    currency="CNY", status="succeeded", external_id="pay_neverseenbythegateway",
                                    succeeded_at=timezone.now())
    for payment in (matched, lost, tampered):
        payment.refresh_from_db()
    return {"matched": matched, "refunded": refunded, "refund_id": refund_id, "tampered": tampered,
            "lost": lost, "lost_order": lost_order, "forged": forged, "refunded_order": refunded_order}


def findings(run):
    return {(item.kind, item.external_id): item for item in run.items.all()}


def test_each_kind_of_mismatch_is_found(seeded):
    today = timezone.now().date()
    assert reconcilable_providers() == ["sandbox"]
    run = reconcile_day(provider_slug="sandbox", day=today)
    found = findings(run)
    assert set(found) == {
        (Kind.PAID_NOT_RECORDED, seeded["lost"].external_id),
        (Kind.REFUND_NOT_RECORDED, seeded["refund_id"]),
        (Kind.AMOUNT_DIFFERS, seeded["tampered"].external_id),
        (Kind.NOT_AT_GATEWAY, "pay_neverseenbythegateway"),
    }
    assert run.status == ReconciliationRun.Status.MISMATCHES and run.open_items == 4
    assert run.gateway_payments == 4 and run.gateway_refunds == 1
    assert run.matched == 2  # the clean payment and the refunded one (its payment itself matches)
    assert run.gateway_net == {"CNY": 4 * 2000 - 500}
    lost = found[(Kind.PAID_NOT_RECORDED, seeded["lost"].external_id)]
    assert lost.payment_id == seeded["lost"].pk and lost.gateway_amount == 2000 and lost.fixable
    tampered = found[(Kind.AMOUNT_DIFFERS, seeded["tampered"].external_id)]
    assert (tampered.gateway_amount, tampered.kameng_amount) == (2000, 1900) and not tampered.fixable
    assert not found[(Kind.NOT_AT_GATEWAY, "pay_neverseenbythegateway")].fixable
    assert AuditEvent.objects.filter(action="payments.reconciled").count() == 1


def test_fixes_record_what_the_gateway_did_and_dismissals_need_a_reason(seeded, alice):
    today = timezone.now().date()
    run = reconcile_day(provider_slug="sandbox", day=today)
    found = findings(run)
    lost = found[(Kind.PAID_NOT_RECORDED, seeded["lost"].external_id)]
    reconciliation_fix(item_id=lost.pk, actor=alice)
    order = Order.objects.get(pk=seeded["lost_order"].pk)
    assert order.status == Order.Status.DELIVERED
    with pytest.raises(ReconciliationError, match="already fixed"):
        reconciliation_fix(item_id=lost.pk, actor=alice)  # a double click changes nothing

    refund = found[(Kind.REFUND_NOT_RECORDED, seeded["refund_id"])]
    reconciliation_fix(item_id=refund.pk, actor=alice)
    refunded_order = Order.objects.get(pk=seeded["refunded_order"].pk)
    assert refunded_order.refunded_amount == 500

    tampered = found[(Kind.AMOUNT_DIFFERS, seeded["tampered"].external_id)]
    with pytest.raises(ReconciliationError, match="cannot fix this kind"):
        reconciliation_fix(item_id=tampered.pk, actor=alice)
    with pytest.raises(ReconciliationError, match="Say why"):
        reconciliation_dismiss(item_id=tampered.pk, actor=alice, note="   ")
    reconciliation_dismiss(item_id=tampered.pk, actor=alice, note="Amount corrected by hand; checked the bank.")
    tampered.refresh_from_db()
    assert tampered.status == "dismissed" and tampered.resolved_by == alice.email
    assert AuditEvent.objects.filter(action="payments.reconciliation_fixed", actor_email=alice.email).count() == 2
    dismissal = AuditEvent.objects.get(action="payments.reconciliation_dismissed")
    assert dismissal.reason.startswith("Amount corrected") and dismissal.actor_email == alice.email

    # run again: fixed findings now match, the dismissal stands, nothing is duplicated
    again = reconcile_day(provider_slug="sandbox", day=today)
    assert again.pk == run.pk
    assert {(i.kind, i.status) for i in again.items.all()} == {
        (Kind.PAID_NOT_RECORDED, "fixed"), (Kind.REFUND_NOT_RECORDED, "fixed"),
        (Kind.AMOUNT_DIFFERS, "dismissed"), (Kind.NOT_AT_GATEWAY, "open")}
    assert again.open_items == 1 and again.matched == 4


def test_a_late_webhook_after_a_fix_delivers_nothing_twice(seeded, alice):
    from platform_core.payments.services import payments_poll_pending

    run = reconcile_day(provider_slug="sandbox", day=timezone.now().date())
    lost = findings(run)[(Kind.PAID_NOT_RECORDED, seeded["lost"].external_id)]
    reconciliation_fix(item_id=lost.pk, actor=alice)
    Payment.objects.filter(pk=seeded["lost"].pk).update(created_at=timezone.now() - timedelta(minutes=10))
    assert payments_poll_pending() == 0  # the payment is no longer pending
    order = Order.objects.get(pk=seeded["lost_order"].pk)
    assert order.events.filter(kind="order.delivered").count() == 1


def test_bad_requests_are_refused_clearly(sandbox_shop, gateway):
    today = timezone.now().date()
    with pytest.raises(ReconciliationError, match="has not begun"):
        reconcile_day(provider_slug="sandbox", day=today + timedelta(days=1))
    with pytest.raises(ReconciliationError, match="at most 400 days"):
        reconcile_day(provider_slug="sandbox", day=today - timedelta(days=401))
    with pytest.raises(ReconciliationError, match="not available"):
        reconcile_day(provider_slug="nope", day=today)
    with pytest.raises(ReconciliationError, match="No such reconciliation finding"):
        reconciliation_fix(item_id=999999)
    assert not ReconciliationRun.objects.exists()


def test_an_unreachable_gateway_is_a_failed_run_not_a_crash(sandbox_shop, gateway):
    gateway.stop()
    run = reconcile_day(provider_slug="sandbox", day=timezone.now().date())
    assert run.status == ReconciliationRun.Status.FAILED and "not reachable" in run.message
    assert not run.items.exists()


def test_the_daily_job_reconciles_yesterday_for_each_method_with_a_report(seeded):
    runs = reconcile_yesterday()
    assert [(run.provider, run.day) for run in runs] == [("sandbox", timezone.now().date() - timedelta(days=1))]
    # yesterday nothing settled; today's forged payment does not belong to yesterday
    assert runs[0].status == ReconciliationRun.Status.MATCHED and runs[0].gateway_payments == 0


# --- API and console ------------------------------------------------------------------------

def member(shop, email, role):
    from tenants.models import Merchant, ShopMembership

    merchant = Merchant.objects.create_user(email, "a-long-password-1")
    ShopMembership.objects.create(shop=shop, merchant=merchant, role=role)
    return merchant


def api_as(merchant):
    from django.test import Client
    from rest_framework.authtoken.models import Token

    return Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant).key}")


def test_finance_staff_reconcile_and_settle_through_the_api(seeded, sandbox_shop):
    from plugins.services import plugin_configure

    plugin_configure(shop=sandbox_shop, slug="wallet", data={}, enable=True)
    finance = api_as(member(sandbox_shop, "books@example.com", "finance"))
    staff = api_as(member(sandbox_shop, "desk@example.com", "staff"))
    today = timezone.now().date().isoformat()
    assert staff.get("/api/v1/reconciliation/").status_code == 403
    assert staff.post("/api/v1/reconciliation/", {"provider": "sandbox", "day": today},
                      content_type="application/json").status_code == 403
    refused = finance.post("/api/v1/reconciliation/", {"provider": "wallet", "day": today},
                           content_type="application/json")
    assert refused.status_code == 400 and refused.json()["field"] == "provider"
    assert "no settlement report" in refused.json()["detail"]
    bad_day = finance.post("/api/v1/reconciliation/", {"provider": "sandbox", "day": "yesterday"},
                           content_type="application/json")
    assert bad_day.status_code == 400 and bad_day.json()["field"] == "day"

    created = finance.post("/api/v1/reconciliation/", {"provider": "sandbox", "day": today},
                           content_type="application/json")
    assert created.status_code == 201, created.content
    run = created.json()
    assert run["status"] == "mismatches" and run["open_items"] == 4 and len(run["findings"]) == 4
    by_kind = {finding["kind"]: finding for finding in run["findings"]}
    lost = by_kind["paid_not_recorded"]
    assert lost["fixable"] and lost["order_number"] == seeded["lost_order"].number
    assert finance.get(f"/api/v1/reconciliation/?day={today}&provider=sandbox").json()[0]["id"] == run["id"]
    assert finance.get("/api/v1/reconciliation/?day=2026-02-30").status_code == 400

    fixed = finance.post(f"/api/v1/reconciliation/findings/{lost['id']}/fix/")
    assert fixed.status_code == 200 and fixed.json()["status"] == "fixed"
    assert finance.post(f"/api/v1/reconciliation/findings/{lost['id']}/fix/").status_code == 409
    assert finance.post("/api/v1/reconciliation/findings/987654/fix/").status_code == 404
    forged = by_kind["not_at_gateway"]
    no_note = finance.post(f"/api/v1/reconciliation/findings/{forged['id']}/dismiss/", {},
                           content_type="application/json")
    assert no_note.status_code == 400 and no_note.json()["field"] == "note"
    dismissed = finance.post(f"/api/v1/reconciliation/findings/{forged['id']}/dismiss/",
                             {"note": "Test order paid in cash at the counter."}, content_type="application/json")
    assert dismissed.status_code == 200 and dismissed.json()["resolved_by"] == "books@example.com"
    assert Order.objects.get(pk=seeded["lost_order"].pk).status == Order.Status.DELIVERED


def test_the_console_page_lists_findings_and_records_them(seeded, sandbox_shop, alice, shop_client):
    run = reconcile_day(provider_slug="sandbox", day=timezone.now().date())
    client = shop_client(sandbox_shop, alice)
    page = client.get("/manage/reconciliation/")
    html = page.content.decode()
    assert page.status_code == 200 and html.count("data-finding=") == 4
    assert "Paid at the gateway, not in Kameng" in html and seeded["lost_order"].number in html
    lost = run.items.get(kind=Kind.PAID_NOT_RECORDED)
    assert client.post(f"/manage/reconciliation/findings/{lost.pk}/fix/").status_code == 302
    lost.refresh_from_db()
    assert lost.status == "fixed" and lost.resolved_by == alice.email
    after = client.get("/manage/reconciliation/").content.decode()
    assert after.count("data-finding=") == 3 and "Recorded: paid at the gateway" in after
    staff = shop_client(sandbox_shop, member(sandbox_shop, "desk2@example.com", "staff"))
    assert staff.get("/manage/reconciliation/").status_code == 403
    tampered = run.items.get(kind=Kind.AMOUNT_DIFFERS)
    assert staff.post(f"/manage/reconciliation/findings/{tampered.pk}/dismiss/", {"note": "x"}).status_code == 403
    tampered.refresh_from_db()
    assert tampered.status == "open"
