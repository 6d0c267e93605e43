"""Collecting invoices through the platform's own Stripe account, against the fake
Stripe over real HTTP: the owner's first payment on Stripe Checkout saves the card on
the shop's Customer; the next invoice is charged to it off-session without the owner;
declines follow the dunning schedule (frozen clock) with the reason and the pay link;
paying by link reactivates a suspended shop at once; a timeout never charges twice;
a forged webhook changes nothing; no secret reaches a log."""
from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.test import Client

from billing import collection, invoicing
from billing.models import BillingCustomer, CollectionAttempt, Invoice, Subscription
from platform_core.audit.models import AuditEvent
from tests.api.test_commerce_api import api
from tests.billing.test_invoices import start_paid_subscription
from tests.fakegateways.stripe import WEBHOOK_SECRET as A_SHOP_WEBHOOK_SECRET
from tests.fakegateways.stripe import FakeStripe, parse_form
from tests.payments.bridge import ShopBridge

SH = ZoneInfo("Asia/Shanghai")
HOOK = "/billing/hooks/stripe/"
PLATFORM_KEY = "sk_test_" + "PlatformBilling" + "K" * 30
PLATFORM_HOOK_SECRET = "whsec_" + "PlatformSigning" + "H" * 24


def at(*args):
    return datetime(*args, tzinfo=SH)


def run(when):
    with time_machine.travel(when, tick=False):
        return collection.dunning_run()


def status(shop):
    shop.refresh_from_db()
    return Subscription.objects.get(shop=shop).status, shop.status


@pytest.fixture
def fake(settings):
    settings.KAMENG_PAYMENT_HTTP_BACKOFF = 0.01
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (3.05, 5.0)
    with FakeStripe(api_key=PLATFORM_KEY, webhook_secret=PLATFORM_HOOK_SECRET) as stripe:
        settings.KAMENG_STRIPE_API_BASE = stripe.base_url
        settings.KAMENG_BILLING_PROVIDER = "billing.gateway.StripeBillingGateway"
        settings.KAMENG_BILLING_STRIPE_SECRET_KEY = PLATFORM_KEY
        settings.KAMENG_BILLING_STRIPE_WEBHOOK_SECRET = PLATFORM_HOOK_SECRET
        yield stripe
    assert not stripe.crashes, stripe.crashes


@pytest.fixture
def bridge(settings):
    """The platform host as a real HTTP endpoint (Stripe posts its events there)."""
    platform = ShopBridge(settings.PLATFORM_DOMAIN)
    yield platform
    platform.close()


def deliver(bridge, fake, event, **options) -> tuple[int, bytes]:
    response = bridge.call(lambda: fake.notify(bridge.url(HOOK), event, **options))
    return response.status_code, response.content


def issue(shop, year, month):
    following = (year + month // 12, month % 12 + 1)
    return invoicing.invoice_issue_monthly(shop=shop, year=year, month=month, now=at(*following, 1, 9, 0))


def pay_by_link(shop, invoice, client, fake, bridge, *, last4="4242", brand="visa") -> str:
    """The owner clicks "Pay now" and pays on Stripe Checkout; returns the session id."""
    response = client.post(f"/manage/billing/invoices/{invoice.pk}/pay/")
    assert response.status_code == 302 and response["Location"].startswith(fake.base_url + "/c/pay/cs_test_")
    session_id = response["Location"].rsplit("/", 1)[1]
    completed, intent_succeeded = fake.pay(session_id, last4=last4, brand=brand)
    assert deliver(bridge, fake, completed) == (200, b"paid")
    assert deliver(bridge, fake, intent_succeeded) == (200, b"already recorded")
    return session_id


@pytest.fixture
def card_saved(alpha, alice, shop_client, fake, bridge, django_capture_on_commit_callbacks):
    """January paid by link on Stripe Checkout: the card is saved on alpha's Customer."""
    start_paid_subscription(alpha, plan="pro", trial_end=at(2026, 1, 1, 0, 0))
    january = issue(alpha, 2026, 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 2, 1, 9, 0)) == {"steps": 1, "suspended": 0}
    session_id = pay_by_link(alpha, january, shop_client(alpha, alice), fake, bridge)
    customer = BillingCustomer.objects.get(shop=alpha)
    return {"january": january, "session": session_id, "customer": customer,
            "card": fake.intents[fake.sessions[session_id]["payment_intent"]]["payment_method"]}


def test_the_first_payment_on_checkout_saves_the_card(alpha, alice, shop_client, card_saved, fake, settings):
    january, customer, card = card_saved["january"], card_saved["customer"], card_saved["card"]
    # before the card: dunning could not charge, so it asked the owner by e-mail
    no_card, paid = january.attempts.order_by("id")
    assert no_card.status == "failed" and "No stored payment method" in no_card.message
    assert [m.subject for m in mail.outbox][:1] == ["Invoice INV-2026-000001: ¥99.00"]
    assert "/manage/billing/" in mail.outbox[0].body
    assert paid.status == "succeeded" and paid.external_id == card_saved["session"]
    # Checkout on the shop's own Customer, keeping the card for off-session use
    created, = fake.received("POST", r"/v1/checkout/sessions")
    form = parse_form(created.body)
    assert form["mode"] == "payment" and form["customer"] == customer.customer_id
    assert form["payment_intent_data"]["setup_future_usage"] == "off_session"
    assert form["client_reference_id"] == str(paid.pk) and form["metadata"]["kameng_invoice"] == january.number
    assert fake.customers[customer.customer_id]["metadata"] == {"kameng_shop": str(alpha.pk), "kameng_slug": "alpha"}
    # the card paid with is ours and Stripe's default for invoices
    assert (customer.provider, customer.payment_method_id, customer.card_brand, customer.card_last4) == \
        ("platform-stripe", card, "visa", "4242")
    assert fake.customers[customer.customer_id]["invoice_settings"]["default_payment_method"] == card
    assert Invoice.objects.get(pk=january.pk).status == "paid"
    assert AuditEvent.objects.filter(action="billing.card_saved", data__last4="4242").count() == 1
    assert "visa •••• 4242" in shop_client(alpha, alice).get("/manage/billing/").content.decode()
    assert api(alpha, alice).get("/api/v1/billing/").json()["saved_card"] | {"saved_at": None} == \
        {"brand": "visa", "last4": "4242", "saved_at": None}
    assert len(fake.customers) == 1
    # the platform console lists it (read-only)
    from tenants.models import Merchant
    from tests.conftest import PASSWORD

    console = Client(HTTP_HOST=settings.PLATFORM_DOMAIN)
    console.force_login(Merchant.objects.create_superuser("root@example.com", PASSWORD))
    listing = console.get("/console/billing/billingcustomer/")
    assert listing.status_code == 200 and customer.customer_id in listing.content.decode()
    assert console.get("/console/billing/billingcustomer/add/").status_code == 403


def test_the_next_invoice_is_charged_to_the_saved_card_without_the_owner(alpha, card_saved, fake, bridge, settings,
                                                                        django_capture_on_commit_callbacks):
    customer, card = card_saved["customer"], card_saved["card"]
    february = issue(alpha, 2026, 2)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 3, 1, 9, 0)) == {"steps": 1, "suspended": 0}
        assert run(at(2026, 3, 1, 9, 30)) == {"steps": 0, "suspended": 0}  # beat twice: charged once
    attempt, = Invoice.objects.get(pk=february.pk).attempts.all()
    assert attempt.status == "succeeded" and attempt.external_id.startswith("pi_")
    assert Invoice.objects.get(pk=february.pk).status == "paid"
    charge, = fake.received("POST", r"/v1/payment_intents")
    form = parse_form(charge.body)
    assert (form["amount"], form["currency"], form["customer"], form["payment_method"]) == \
        (str(february.total), "cny", customer.customer_id, card)
    assert (form["confirm"], form["off_session"]) == ("true", "true")
    assert form["metadata"] == {"kameng_payment": str(attempt.pk), "kameng_invoice": february.number}
    assert charge.headers["Idempotency-Key"] == \
        f"kameng-billing-{settings.PLATFORM_DOMAIN}-charge-{february.number}-{attempt.pk}"
    assert fake.intents[attempt.external_id]["amount_received"] == 9900
    assert [m.subject for m in mail.outbox] == [f"Payment received for {february.number}"]
    assert status(alpha) == ("active", "active")
    # Stripe's own event about that charge follows: answered, nothing twice
    event = fake.event("payment_intent.succeeded", fake.intents[attempt.external_id])
    assert deliver(bridge, fake, event) == (200, b"already recorded")
    assert CollectionAttempt.objects.filter(invoice=february, status="succeeded").count() == 1


def test_declines_follow_the_dunning_schedule_and_paying_by_link_reactivates(
        alpha, alice, shop_client, card_saved, fake, bridge, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    february = issue(alpha, 2026, 2)
    fake.card_refuses(card_saved["card"], "card_declined")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 3, 1, 9, 0))["steps"] == 1                   # at issue: declined
    first, = Invoice.objects.get(pk=february.pk).attempts.all()
    assert first.status == "failed" and "card_declined" in first.message and "Your card was declined" in first.message
    assert Invoice.objects.get(pk=february.pk).last_attempt_error == first.message
    assert mail.outbox[-1].subject == f"Invoice {february.number}: ¥99.00"
    assert "could not charge your saved card" in mail.outbox[-1].body and "/manage/billing/" in mail.outbox[-1].body
    assert status(alpha) == ("active", "active")

    fake.card_refuses(card_saved["card"], "authentication_required")
    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 3, 2, 8, 59))["steps"] == 0                  # not yet a day: no charge
        assert run(at(2026, 3, 2, 9, 0))["steps"] == 1                   # day 1: declined, past due
    assert len(fake.received("POST", r"/v1/payment_intents")) == 2
    second = Invoice.objects.get(pk=february.pk).attempts.order_by("id").last()
    assert second.status == "failed" and "authentication_required" in second.message
    assert mail.outbox[-1].subject == f"Reminder: invoice {february.number} is unpaid"
    assert "confirm this payment" in mail.outbox[-1].body and "/manage/billing/" in mail.outbox[-1].body
    assert status(alpha)[0] == "past_due"

    fake.card_refuses(card_saved["card"], "insufficient_funds")
    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 3, 4, 9, 0))["steps"] == 1                   # day 3
        assert run(at(2026, 3, 8, 9, 0))["steps"] == 1                   # day 7: final
        assert run(at(2026, 3, 10, 9, 0)) == {"steps": 0, "suspended": 0}
        assert run(at(2026, 3, 11, 9, 0)) == {"steps": 0, "suspended": 1}  # due + 10 days
    charges = fake.received("POST", r"/v1/payment_intents")
    keys = [request.headers["Idempotency-Key"] for request in charges]
    assert len(charges) == 4 and len(set(keys)) == 4                      # a key per attempt
    attempts = list(Invoice.objects.get(pk=february.pk).attempts.order_by("id"))
    assert [a.status for a in attempts] == ["failed"] * 4
    assert "insufficient_funds" in attempts[-1].message
    assert mail.outbox[-2].subject == f"Final reminder: invoice {february.number} is unpaid"
    assert status(alpha) == ("suspended", "suspended")
    assert shop_client(alpha).get("/").status_code == 403

    # the owner pays by link with another card: back at once, and that card is kept
    session_id = pay_by_link(alpha, february, shop_client(alpha, alice), fake, bridge, last4="4444",
                             brand="mastercard")
    assert Invoice.objects.get(pk=february.pk).status == "paid"
    assert status(alpha) == ("active", "active")
    assert shop_client(alpha).get("/").status_code == 200
    customer = BillingCustomer.objects.get(shop=alpha)
    new_card = fake.intents[fake.sessions[session_id]["payment_intent"]]["payment_method"]
    assert (customer.payment_method_id, customer.card_brand, customer.card_last4) == (new_card, "mastercard", "4444")
    assert new_card != card_saved["card"]

    # secrets never reach a log, an attempt or a mail
    written = [record.getMessage() for record in caplog.records]
    written += [a.message for a in CollectionAttempt.objects.filter(invoice__shop=alpha)]
    written += [m.body for m in mail.outbox]
    assert any("/v1/payment_intents" in line for line in written)  # the calls were logged
    for secret in (PLATFORM_KEY, PLATFORM_HOOK_SECRET, PLATFORM_KEY[8:]):
        assert not [line for line in written if secret in line]


def test_a_timeout_during_the_charge_is_retried_with_the_same_key_and_charges_once(alpha, card_saved, fake, settings,
                                                                                  django_capture_on_commit_callbacks):
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (3.05, 1.0)
    february = issue(alpha, 2026, 2)
    fake.stall("POST", r"/v1/payment_intents", 2.0)  # charged at Stripe, the answer comes too late
    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 3, 1, 9, 0))["steps"] == 1
    sent = fake.received("POST", r"/v1/payment_intents")
    assert len(sent) == 2 and sent[0].body == sent[1].body
    assert sent[0].headers["Idempotency-Key"] == sent[1].headers["Idempotency-Key"]
    charged = [i for i in fake.intents.values() if i["metadata"].get("kameng_invoice") == february.number]
    assert len(charged) == 1 and charged[0]["status"] == "succeeded"
    assert len([c for c in fake.charges.values() if c["payment_intent"] == charged[0]["id"]]) == 1
    attempt, = Invoice.objects.get(pk=february.pk).attempts.all()
    assert attempt.status == "succeeded" and attempt.external_id == charged[0]["id"]
    assert Invoice.objects.get(pk=february.pk).status == "paid"


def test_a_charge_whose_answer_never_came_is_paid_by_stripes_event(alpha, card_saved, fake, settings, bridge,
                                                                   django_capture_on_commit_callbacks):
    """Every try timed out: the attempt is given up, but Stripe charged; its event pays
    the invoice instead of leaving money without an invoice."""
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (3.05, 0.5)
    february = issue(alpha, 2026, 2)
    fake.stall("POST", r"/v1/payment_intents", 1.0, times=3)
    with django_capture_on_commit_callbacks(execute=True):
        assert run(at(2026, 3, 1, 9, 0))["steps"] == 1
    attempt, = Invoice.objects.get(pk=february.pk).attempts.all()
    assert attempt.status == "failed" and "did not answer" in attempt.message
    intent, = [i for i in fake.intents.values() if i["metadata"].get("kameng_invoice") == february.number]
    assert deliver(bridge, fake, fake.event("payment_intent.succeeded", intent)) == (200, b"paid")
    attempt.refresh_from_db()
    assert attempt.status == "succeeded" and Invoice.objects.get(pk=february.pk).status == "paid"
    assert deliver(bridge, fake, fake.event("payment_intent.succeeded", intent)) == (200, b"already recorded")


def test_a_late_charge_after_the_owner_paid_by_link_is_flagged_for_refund(alpha, alice, shop_client, card_saved, fake,
                                                                         settings, bridge, caplog,
                                                                         django_capture_on_commit_callbacks):
    settings.KAMENG_PAYMENT_HTTP_TIMEOUT = (3.05, 0.5)
    february = issue(alpha, 2026, 2)
    fake.stall("POST", r"/v1/payment_intents", 1.0, times=3)
    with django_capture_on_commit_callbacks(execute=True):
        run(at(2026, 3, 1, 9, 0))
    charged, = CollectionAttempt.objects.filter(invoice=february)
    assert charged.status == "failed"
    pay_by_link(alpha, february, shop_client(alpha, alice), fake, bridge)   # the owner pays meanwhile
    intent, = [i for i in fake.intents.values() if i["metadata"].get("kameng_payment") == str(charged.pk)]
    with caplog.at_level(logging.ERROR, logger="billing.collection"):
        assert deliver(bridge, fake, fake.event("payment_intent.succeeded", intent)) == (200, b"duplicate")
        assert deliver(bridge, fake, fake.event("payment_intent.succeeded", intent)) == (200, b"already recorded")
    charged.refresh_from_db()
    assert charged.status == "failed" and "to be refunded" in charged.message
    assert [r for r in caplog.records if "paid twice" in r.getMessage()]
    assert CollectionAttempt.objects.filter(invoice=february, status="succeeded").count() == 1


def test_a_forged_webhook_changes_nothing(alpha, alice, shop_client, fake, bridge, settings):
    start_paid_subscription(alpha, plan="pro", trial_end=at(2026, 1, 1, 0, 0))
    january = issue(alpha, 2026, 1)
    response = shop_client(alpha, alice).post(f"/manage/billing/invoices/{january.pk}/pay/")
    session_id = response["Location"].rsplit("/", 1)[1]
    completed, intent_succeeded = fake.pay(session_id)
    platform = Client(HTTP_HOST=settings.PLATFORM_DOMAIN)
    # signed with another secret (a shop's, say), unsigned, stale, or sent to another provider's endpoint
    assert deliver(bridge, fake, completed, secrets=(A_SHOP_WEBHOOK_SECRET,))[0] == 400
    body, headers = fake.signed(completed)
    assert platform.post(HOOK, data=body, content_type="application/json").status_code == 400
    assert platform.post(HOOK, data=body + b" ", content_type="application/json",
                         headers={"Stripe-Signature": headers["Stripe-Signature"]}).status_code == 400
    assert deliver(bridge, fake, intent_succeeded, timestamp=1)[0] == 400
    assert platform.post("/billing/hooks/sandbox/", data=body, content_type="application/json",
                         headers={"Stripe-Signature": headers["Stripe-Signature"]}).status_code == 404
    attempt, = CollectionAttempt.objects.filter(invoice=january)
    assert attempt.status == "pending" and Invoice.objects.get(pk=january.pk).status == "open"
    assert BillingCustomer.objects.get(shop=alpha).payment_method_id == ""
    assert not fake.received("GET", r"/v1/payment_methods/.*")
    # the genuine event still works afterwards
    assert deliver(bridge, fake, completed) == (200, b"paid")


def test_without_platform_keys_collection_explains_and_touches_nothing(alpha, alice, shop_client, fake, settings):
    settings.KAMENG_BILLING_STRIPE_SECRET_KEY = ""
    start_paid_subscription(alpha, plan="pro", trial_end=at(2026, 1, 1, 0, 0))
    january = issue(alpha, 2026, 1)
    page = shop_client(alpha, alice).post(f"/manage/billing/invoices/{january.pk}/pay/", follow=True)
    assert b"not set up on this platform yet" in page.content
    assert not CollectionAttempt.objects.filter(invoice=january).exists()
    assert not BillingCustomer.objects.filter(shop=alpha).exists() and not fake.requests
    # a wrong key: Stripe says 401, the message names no key
    settings.KAMENG_BILLING_STRIPE_SECRET_KEY = "sk_test_" + "Wrong" * 8
    page = shop_client(alpha, alice).post(f"/manage/billing/invoices/{january.pk}/pay/", follow=True)
    assert b"refused" in page.content and b"Wrong" not in page.content
    assert not CollectionAttempt.objects.filter(invoice=january).exists()
