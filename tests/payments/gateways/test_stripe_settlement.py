"""Reconciliation (对账) against the fake Stripe's balance transactions over real HTTP:
each kind of mismatch seeded the way it happens in life is found and can be fixed; the
day's report is read whole across pages, in the right window, and a report that cannot
be read whole fails the run instead of producing a half-true reconciliation."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from platform_core.orders.models import Order
from platform_core.orders.services import order_refund
from platform_core.payments.models import Payment, ReconciliationItem, ReconciliationRun
from platform_core.payments.reconciliation import reconcilable_providers, reconcile_day, reconciliation_fix
from platform_core.payments.services import provider_for
from plugins.payment import PaymentError
from tests.fakegateways.stripe import API_KEY
from tests.payments.conftest import make_stock, place_order
from tests.payments.gateways.test_stripe import deliver, start

Kind = ReconciliationItem.Kind


def paid(shop, bridge, fake, *, webhook=True, price=1000):
    """A buyer pays 2 keys at ``price``; Stripe's webhook reaches the shop unless lost."""
    _, _, order, payment, _ = start(shop, bridge, price=price)
    completed, _ = fake.pay(payment.external_id)
    if webhook:
        assert deliver(bridge, fake, completed).status_code == 200
    payment.refresh_from_db()
    return order, payment


def findings(run):
    return {(item.kind, item.external_id): item for item in run.items.all()}


@pytest.fixture
def seeded(stripe_shop, fake_stripe, bridge):
    """Today at Stripe: a clean payment refunded in part through Kameng, a payment refunded
    in Stripe's Dashboard (the event lost), a payment whose amount Kameng has wrong, a
    payment whose webhook was lost, a charge of another integration; and in Kameng a
    'paid' payment Stripe never saw."""
    matched_order, matched = paid(stripe_shop, bridge, fake_stripe)
    order_refund(order=matched_order, amount=500, reason="One key did not work", actor="staff@alpha.example")
    refunded_order, refunded = paid(stripe_shop, bridge, fake_stripe)
    fake_stripe.refund_in_dashboard(refunded.external_id, 700)  # its charge.refunded event is lost
    dashboard_refund, = [r for r in fake_stripe.refunds.values() if r["amount"] == 700]
    _, tampered = paid(stripe_shop, bridge, fake_stripe)
    Payment.objects.filter(pk=tampered.pk).update(amount=1900)
    lost_order, lost = paid(stripe_shop, bridge, fake_stripe, webhook=False)
    fake_stripe.charge_elsewhere(4200)
    sku, _ = make_stock(stripe_shop, keys=1)
    forged_order = place_order(sku, quantity=1)
    forged = Payment.objects.create(order=forged_order, provider="stripe", amount=forged_order.total, currency="CNY",
                                    status="succeeded", external_id="cs_test_neverseenbystripe",
                                    succeeded_at=timezone.now())
    return {"matched": matched, "refunded": refunded, "refunded_order": refunded_order,
            "refund_id": dashboard_refund["id"], "tampered": tampered, "lost": lost, "lost_order": lost_order,
            "forged": forged}


def test_each_kind_of_mismatch_is_found_and_fixed(seeded, fake_stripe, alice):
    today = timezone.now().date()
    assert "stripe" in reconcilable_providers()
    run = reconcile_day(provider_slug="stripe", day=today)
    found = findings(run)
    assert set(found) == {
        (Kind.PAID_NOT_RECORDED, seeded["lost"].external_id),
        (Kind.REFUND_NOT_RECORDED, seeded["refund_id"]),
        (Kind.AMOUNT_DIFFERS, seeded["tampered"].external_id),
        (Kind.NOT_AT_GATEWAY, "cs_test_neverseenbystripe"),
    }
    # the other integration's charge is not Kameng's business
    assert run.gateway_payments == 4 and run.gateway_refunds == 2
    assert run.matched == 3  # two payments and the refund made through Kameng
    assert run.gateway_net == {"CNY": 4 * 2000 - 700 - 500}
    assert run.status == ReconciliationRun.Status.MISMATCHES and run.open_items == 4
    lost = found[(Kind.PAID_NOT_RECORDED, seeded["lost"].external_id)]
    assert (lost.payment_id, lost.gateway_amount, lost.currency) == (seeded["lost"].pk, 2000, "CNY")
    tampered = found[(Kind.AMOUNT_DIFFERS, seeded["tampered"].external_id)]
    assert (tampered.gateway_amount, tampered.kameng_amount) == (2000, 1900)
    refund = found[(Kind.REFUND_NOT_RECORDED, seeded["refund_id"])]
    assert (refund.payment_id, refund.gateway_amount) == (seeded["refunded"].pk, 700)

    # the wire format Stripe sees
    listed, = fake_stripe.received("GET", r"/v1/balance_transactions")
    start = int(datetime.combine(today, time.min, tzinfo=dt_timezone.utc).timestamp())
    assert listed.query == {"created[gte]": [str(start)], "created[lt]": [str(start + 86400)], "limit": ["100"],
                            "expand[]": ["data.source", "data.source.payment_intent"]}
    assert listed.headers["Authorization"] == f"Bearer {API_KEY}" and listed.headers["Stripe-Version"] == "2024-06-20"

    # one click records what Stripe did
    reconciliation_fix(item_id=lost.pk, actor=alice)
    reconciliation_fix(item_id=refund.pk, actor=alice)
    assert Order.objects.get(pk=seeded["lost_order"].pk).status == Order.Status.DELIVERED
    assert Order.objects.get(pk=seeded["refunded_order"].pk).refunded_amount == 700
    again = reconcile_day(provider_slug="stripe", day=today)
    assert again.pk == run.pk and again.matched == 5 and again.open_items == 2


def test_the_whole_day_is_read_across_pages_and_nothing_outside_it(stripe_shop, fake_stripe, bridge):
    fake_stripe.page_cap = 2
    payments = [paid(stripe_shop, bridge, fake_stripe)[1] for _ in range(5)]
    yesterday = timezone.now() - timedelta(days=1)
    fake_stripe.backdate(fake_stripe.charge_of(payments[0].external_id)["id"], int(yesterday.timestamp()))
    today = timezone.now().date()
    lines = provider_for("stripe").settlement(today)
    assert sorted(line.external_id for line in lines) == sorted(p.external_id for p in payments[1:])
    assert {(line.kind, line.reference, line.amount, line.currency) for line in lines} == {
        ("payment", str(p.pk), 2000, "CNY") for p in payments[1:]}
    pages = fake_stripe.received("GET", r"/v1/balance_transactions")
    assert len(pages) == 2 and "starting_after" not in pages[0].query
    assert pages[1].query["starting_after"][0].startswith("txn_")
    # the payment moved to yesterday is in yesterday's report only
    earlier = provider_for("stripe").settlement(yesterday.date())
    assert [line.external_id for line in earlier] == [payments[0].external_id]
    # one Checkout Session question per PaymentIntent
    assert len(fake_stripe.received("GET", r"/v1/checkout/sessions")) == 5


def _drop(field):
    def mangle(page):
        page.pop(field)
        return page
    return mangle


def _spoil_first(**changes):
    def mangle(page):
        if page["data"]:
            page["data"][0].update(changes)
        return page
    return mangle


def _spoil_source(**changes):
    def mangle(page):
        if page["data"]:
            page["data"][0]["source"].update(changes)
        return page
    return mangle


@pytest.mark.parametrize("mangler, words", [
    (_drop("has_more"), "not a list"),
    (_drop("data"), "not a list"),
    (_spoil_first(id="nope"), "without a valid id"),
    (_spoil_first(source="ch_notexpanded"), "no expanded charge"),
    (_spoil_source(amount="20.00"), "no valid amount"),
    (_spoil_source(currency="CNY!"), "no valid currency"),
    (lambda page: {**page, "data": page["data"] * 2}, "listed twice"),
    (lambda page: {**page, "has_more": True, "data": []}, "after an empty one"),
])
def test_a_report_that_cannot_be_read_whole_fails_the_run_and_changes_nothing(stripe_shop, fake_stripe, bridge,
                                                                             mangler, words):
    order, payment = paid(stripe_shop, bridge, fake_stripe, webhook=False)
    fake_stripe.report_mangler = mangler
    with pytest.raises(PaymentError, match=words) as caught:
        provider_for("stripe").settlement(timezone.now().date())
    assert caught.value.retryable
    run = reconcile_day(provider_slug="stripe", day=timezone.now().date())
    assert run.status == ReconciliationRun.Status.FAILED and "could not be read" in run.message
    assert not run.items.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


def test_stripe_down_gives_a_failed_run_with_the_reason(stripe_shop, fake_stripe, bridge):
    paid(stripe_shop, bridge, fake_stripe)
    fake_stripe.fail("GET", r"/v1/balance_transactions", 503, times=3)  # every attempt of the run
    run = reconcile_day(provider_slug="stripe", day=timezone.now().date())
    assert run.status == ReconciliationRun.Status.FAILED and "Try again" in run.message
    assert not run.items.exists()
    run = reconcile_day(provider_slug="stripe", day=timezone.now().date())
    assert run.status == ReconciliationRun.Status.MATCHED and run.matched == 1
