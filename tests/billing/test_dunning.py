"""The dunning timeline on a frozen clock: invoice mail, reminders on days 1, 3 and 7,
past due, suspension after the grace period (storefront closed, console open), and
reactivation the moment the invoice is paid through the real sandbox gateway."""
from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests
import time_machine
from django.core import mail

from billing import collection, invoicing
from billing.models import CollectionAttempt, Invoice, Subscription, SubscriptionEvent
from sandbox_gateway import serve_in_thread
from tests.billing.test_invoices import start_paid_subscription
from tests.payments.bridge import ShopBridge

SH = ZoneInfo("Asia/Shanghai")


def at(*args):
    return datetime(*args, tzinfo=SH)


def run(when):
    with time_machine.travel(when, tick=False):
        return collection.dunning_run()


def status(shop):
    shop.refresh_from_db()
    return Subscription.objects.get(shop=shop).status, shop.status


@pytest.fixture
def issued(alpha):
    start_paid_subscription(alpha, plan="pro", trial_end=at(2026, 1, 1, 0, 0))
    invoice = invoicing.invoice_issue_monthly(shop=alpha, year=2026, month=1, now=at(2026, 2, 1, 9, 0))
    assert invoice.total == 9900 and invoice.due_at == at(2026, 2, 1, 9, 0)
    return invoice


def test_dunning_timeline(alpha, bravo, issued, shop_client, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 2, 1, 9, 0)) == {"steps": 1, "suspended": 0}
        assert run(at(2026, 2, 1, 9, 30)) == {"steps": 0, "suspended": 0}  # beat twice: nothing twice
    assert [m.subject for m in mail.outbox] == ["Invoice INV-2026-000001: ¥99.00"]
    assert mail.outbox[0].to == ["alice@example.com"] and "/manage/billing/" in mail.outbox[0].body
    (name, content, mimetype), = mail.outbox[0].attachments
    assert name == "INV-2026-000001.pdf" and content.startswith(b"%PDF") and mimetype == "application/pdf"
    assert status(alpha) == ("active", "active")

    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 2, 2, 8, 59))["steps"] == 0          # not yet a day
        assert run(at(2026, 2, 2, 9, 0))["steps"] == 1           # day 1: reminder, past due
        assert run(at(2026, 2, 2, 9, 0))["steps"] == 0
    assert mail.outbox[-1].subject == "Reminder: invoice INV-2026-000001 is unpaid"
    assert "2026-02-11" in mail.outbox[-1].body
    assert status(alpha)[0] == "past_due"
    assert shop_client(alpha).get("/").status_code == 200      # past due still sells

    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 2, 4, 9, 0))["steps"] == 1           # day 3
        assert run(at(2026, 2, 8, 9, 0))["steps"] == 1           # day 7: final reminder
        assert run(at(2026, 2, 10, 9, 0)) == {"steps": 0, "suspended": 0}
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["Invoice INV-2026-000001", "Reminder", "Reminder",
                                                              "Final reminder"]
    invoice = Invoice.objects.get(pk=issued.pk)
    assert invoice.attempt_count == 4 and invoice.next_attempt_at is None
    assert invoice.attempts.filter(status="failed").count() == 4  # the sandbox keeps no card: a link each time

    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 2, 11, 8, 59))["suspended"] == 0
        assert run(at(2026, 2, 11, 9, 0))["suspended"] == 1      # due + 10 days of grace
        assert run(at(2026, 2, 11, 9, 5))["suspended"] == 0
    assert mail.outbox[-1].subject == "Your shop is suspended"
    assert status(alpha) == ("suspended", "suspended")
    assert status(bravo) == ("trial", "trial")                 # nobody else is touched
    storefront = shop_client(alpha).get("/")
    assert storefront.status_code == 403 and b"unavailable" in storefront.content.lower()
    api = shop_client(alpha).get("/api/v1/catalog/products/")
    assert api.status_code == 403 and api.json()["code"] == "shop_unavailable"
    assert b'data-testid="billing-notice"' in shop_client(alpha, alice).get("/manage/").content
    page = shop_client(alpha, alice).get("/manage/billing/")
    assert page.status_code == 200 and "INV-2026-000001" in page.content.decode() and b"Pay now" in page.content
    kinds = list(SubscriptionEvent.objects.filter(subscription__shop=alpha).order_by("id").values_list("kind", flat=True))
    assert kinds[-2:] == ["subscription.past_due", "subscription.suspended"]


@pytest.fixture
def platform_gateway(settings):
    server, base_url = serve_in_thread(webhook_timeout=5.0, retry_delays=(0.2,))
    server.base = base_url
    settings.KAMENG_SANDBOX_URL = base_url
    settings.KAMENG_BILLING_SANDBOX_KEY = "sk_sandbox_platformbilling0001"
    bridge = ShopBridge(settings.PLATFORM_DOMAIN)
    yield server, bridge
    bridge.close()
    server.stop()


def test_paying_a_suspended_shop_reactivates_it_at_once(alpha, issued, shop_client, alice, platform_gateway,
                                                        monkeypatch):
    server, bridge = platform_gateway
    for when in (at(2026, 2, 1, 9), at(2026, 2, 2, 9), at(2026, 2, 4, 9), at(2026, 2, 8, 9), at(2026, 2, 11, 9)):
        run(when)
    assert status(alpha) == ("suspended", "suspended")
    # the webhook reaches this test's Django through the bridge (a real HTTP server)
    monkeypatch.setattr("billing.views._platform_url", lambda path: bridge.url(path))
    client = shop_client(alpha, alice)
    first = client.post(f"/manage/billing/invoices/{issued.pk}/pay/")
    again = client.post(f"/manage/billing/invoices/{issued.pk}/pay/")  # double click: the same payment
    assert first.status_code == 302 and first["Location"] == again["Location"]
    assert first["Location"].startswith(server.base + "/pay/pay_")
    attempt = CollectionAttempt.objects.get(invoice=issued, status="pending")
    assert (attempt.amount, attempt.currency) == (9900, "CNY")

    pay = bridge.call(lambda: requests.post(first["Location"] + "/pay", allow_redirects=False, timeout=10))
    assert pay.status_code == 303 and f"/manage/billing/?attempt={attempt.pk}" in pay.headers["Location"]
    assert [answer.status for _item, answer in bridge.log] == [200]
    invoice = Invoice.objects.get(pk=issued.pk)
    assert invoice.status == "paid" and invoice.paid_at is not None
    assert status(alpha) == ("active", "active")
    assert shop_client(alpha).get("/").status_code == 200
    assert SubscriptionEvent.objects.filter(subscription__shop=alpha).order_by("id").last().kind == \
        "subscription.reactivated"
    # the gateway replays its event: answered, nothing changes
    event_id = json.loads(bridge.log[0][0].body)["id"]
    replay = bridge.call(lambda: requests.post(f"{server.base}/v1/test/replay/{event_id}", timeout=10, headers={
        "Authorization": "Bearer sk_sandbox_platformbilling0001"}))
    assert replay.json()["delivered"] is True and bridge.log[-1][1].body == b"already recorded"
    assert collection.collection_refresh(attempt=CollectionAttempt.objects.get(pk=attempt.pk)) == "succeeded"
    assert CollectionAttempt.objects.filter(invoice=issued, status="succeeded").count() == 1
    # and nothing is left to pay
    after = client.post(f"/manage/billing/invoices/{issued.pk}/pay/", follow=True)
    assert b"nothing left to pay" in after.content


def test_only_owner_and_finance_pay_and_other_shops_invoices_are_invisible(alpha, bravo, issued, shop_client,
                                                                          alice, bob):
    from tenants.models import ShopMembership

    ShopMembership.objects.create(shop=alpha, merchant=bob, role="staff")
    staff = shop_client(alpha, bob)
    page = staff.get("/manage/billing/")
    assert page.status_code == 200 and "INV-2026-000001" not in page.content.decode()  # plan and usage only
    assert staff.get(f"/manage/billing/invoices/{issued.pk}/pdf/").status_code == 403
    assert staff.post(f"/manage/billing/invoices/{issued.pk}/pay/").status_code == 403
    assert staff.post("/manage/billing/plan/", {"plan": "business"}).status_code == 403
    # bravo's owner asking for alpha's invoice by id: not found, on every route
    other = shop_client(bravo, bob)
    assert other.get(f"/manage/billing/invoices/{issued.pk}/pdf/").status_code == 404
    assert other.post(f"/manage/billing/invoices/{issued.pk}/pay/").status_code == 404
    assert "INV-2026-000001" not in other.get("/manage/billing/").content.decode()


def test_a_lost_webhook_is_made_good_by_polling_the_gateway(alpha, issued, platform_gateway, monkeypatch):
    server, bridge = platform_gateway
    bridge.close()  # the platform is "down" when the gateway sends its webhook
    attempt = collection.invoice_pay_start(invoice=issued, return_url="http://x/", notify_url=bridge.url("/hook/"))
    response = requests.post(attempt.pay_url + "/pay", allow_redirects=False, timeout=10)
    assert response.status_code == 303
    assert Invoice.objects.get(pk=issued.pk).status == "open"
    assert collection.collection_poll_pending(older_than_minutes=5) == 0  # too fresh to poll
    assert collection.collection_poll_pending(older_than_minutes=0) == 1
    assert Invoice.objects.get(pk=issued.pk).status == "paid"
    assert collection.collection_poll_pending(older_than_minutes=0) == 0
