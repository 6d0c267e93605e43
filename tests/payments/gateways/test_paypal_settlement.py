"""Reconciliation (对账) against the fake PayPal's Transaction Search over real HTTP: each
kind of mismatch seeded the way it happens in life is found and can be fixed; every page
of the day is read; a day PayPal's data do not cover yet, or a report that cannot be read
whole, fails the run and changes nothing."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from platform_core.orders.models import Order
from platform_core.orders.services import order_refund
from platform_core.payments.models import Payment, ReconciliationItem, ReconciliationRun
from platform_core.payments.reconciliation import reconcile_day, reconciliation_fix
from platform_core.payments.services import provider_for
from plugins.payment import PaymentError
from tests.payments.conftest import make_stock, place_order
from tests.payments.gateways.test_paypal import paid, start

Kind = ReconciliationItem.Kind


def yesterday():
    return timezone.now().date() - timedelta(days=1)


def captured_unknown(shop, fake, bridge):
    """The buyer approved and the capture went through at PayPal, but Kameng never heard
    (the approval webhook was lost and the capture's answer with it)."""
    _, _, order, payment, _ = start(shop, bridge)
    with fake.lock:
        fake.approve(payment.external_id)
        fake._capture(payment.external_id)
    return order, payment


def findings(run):
    return {(item.kind, item.external_id): item for item in run.items.all()}


@pytest.fixture
def seeded(paypal_shop, fake_paypal, bridge):
    """Yesterday at PayPal: a payment refunded in part through Kameng, one refunded in
    PayPal's console (the event lost), one whose amount Kameng has wrong, one captured
    without Kameng knowing; and in Kameng a 'paid' payment PayPal never saw."""
    matched_order, matched = paid(paypal_shop, fake_paypal, bridge)
    order_refund(order=matched_order, amount=500, reason="One key did not work", actor="staff@alpha.example")
    refunded_order, refunded = paid(paypal_shop, fake_paypal, bridge)
    console = fake_paypal.refund_in_console(refunded.external_id, "7.00")["resource"]["id"]
    _, tampered = paid(paypal_shop, fake_paypal, bridge)
    Payment.objects.filter(pk=tampered.pk).update(amount=1900)
    lost_order, lost = captured_unknown(paypal_shop, fake_paypal, bridge)
    fake_paypal.backdate(days=1)
    sku, _ = make_stock(paypal_shop, keys=1)
    forged_order = place_order(sku, quantity=1)
    forged = Payment.objects.create(
        order=forged_order, provider="paypal", amount=forged_order.total, currency="CNY", status="succeeded",
        external_id="9NEVERSEENBYPAYPAL", succeeded_at=datetime.combine(yesterday(), time(12), tzinfo=dt_timezone.utc))
    return {"matched": matched, "refunded": refunded, "refunded_order": refunded_order, "refund_id": console,
            "tampered": tampered, "lost": lost, "lost_order": lost_order, "forged": forged}


def test_each_kind_of_mismatch_is_found_and_fixed(seeded, fake_paypal, alice):
    run = reconcile_day(provider_slug="paypal", day=yesterday())
    found = findings(run)
    assert set(found) == {
        (Kind.PAID_NOT_RECORDED, seeded["lost"].external_id),
        (Kind.REFUND_NOT_RECORDED, seeded["refund_id"]),
        (Kind.AMOUNT_DIFFERS, seeded["tampered"].external_id),
        (Kind.NOT_AT_GATEWAY, "9NEVERSEENBYPAYPAL"),
    }, run.message
    assert run.gateway_payments == 4 and run.gateway_refunds == 2
    assert run.matched == 3
    assert run.gateway_net == {"CNY": 4 * 2000 - 700 - 500}
    lost = found[(Kind.PAID_NOT_RECORDED, seeded["lost"].external_id)]
    assert (lost.payment_id, lost.gateway_amount) == (seeded["lost"].pk, 2000)
    differs = found[(Kind.AMOUNT_DIFFERS, seeded["tampered"].external_id)]
    assert (differs.gateway_amount, differs.kameng_amount) == (2000, 1900)
    refund = found[(Kind.REFUND_NOT_RECORDED, seeded["refund_id"])]
    assert (refund.payment_id, refund.gateway_amount) == (seeded["refunded"].pk, 700)

    searched, = fake_paypal.received("GET", r"/v1/reporting/transactions")
    start_of_day = yesterday().isoformat() + "T00:00:00Z"
    assert searched.query == {"start_date": [start_of_day], "end_date": [timezone.now().date().isoformat()
                                                                          + "T00:00:00Z"],
                              "fields": ["all"], "page_size": ["500"], "page": ["1"]}
    assert searched.headers["Authorization"].startswith("Bearer ")

    reconciliation_fix(item_id=lost.pk, actor=alice)
    reconciliation_fix(item_id=refund.pk, actor=alice)
    assert Order.objects.get(pk=seeded["lost_order"].pk).status == Order.Status.DELIVERED
    assert Order.objects.get(pk=seeded["refunded_order"].pk).refunded_amount == 700
    again = reconcile_day(provider_slug="paypal", day=yesterday())
    assert again.pk == run.pk and again.matched == 5 and again.open_items == 2


def test_every_page_is_read_and_other_days_stay_apart(paypal_shop, fake_paypal, bridge):
    fake_paypal.page_cap = 2
    payments = [paid(paypal_shop, fake_paypal, bridge)[1] for _ in range(5)]
    fake_paypal.backdate(days=1)
    lines = provider_for("paypal").settlement(yesterday())
    assert sorted((line.kind, line.external_id, line.reference, line.amount, line.currency) for line in lines) == \
        sorted(("payment", p.external_id, str(p.pk), 2000, "CNY") for p in payments)
    assert [r.query["page"] for r in fake_paypal.received("GET", r"/v1/reporting/transactions")] == \
        [["1"], ["2"], ["3"]]
    assert provider_for("paypal").settlement(yesterday() - timedelta(days=1)) == []


def test_a_day_paypal_has_not_caught_up_with_is_a_retryable_failure(paypal_shop, fake_paypal, bridge):
    paid(paypal_shop, fake_paypal, bridge)
    fake_paypal.backdate(days=1)
    fake_paypal.refreshed_until = datetime.combine(timezone.now().date(), time.min,
                                                   tzinfo=dt_timezone.utc) - timedelta(hours=2)
    run = reconcile_day(provider_slug="paypal", day=yesterday())
    assert run.status == ReconciliationRun.Status.FAILED and "three hours late" in run.message
    assert not run.items.exists()


def test_an_app_without_transaction_search_is_told_what_to_tick(paypal_shop, fake_paypal):
    fake_paypal.search_allowed = False
    run = reconcile_day(provider_slug="paypal", day=yesterday())
    assert run.status == ReconciliationRun.Status.FAILED and "Transaction Search" in run.message


def _first_info(**changes):
    def mangle(page):
        if page["transaction_details"]:
            page["transaction_details"][0]["transaction_info"].update(changes)
        return page
    return mangle


@pytest.mark.parametrize("mangler, words", [
    (lambda page: {k: v for k, v in page.items() if k != "total_pages"}, "not a transaction list"),
    (lambda page: {k: v for k, v in page.items() if k != "last_refreshed_datetime"}, "how recent"),
    (lambda page: {**page, "transaction_details": [{"nothing": 1}]}, "without transaction_info"),
    (_first_info(transaction_id="x"), "valid id"),
    (_first_info(transaction_amount={"currency_code": "CNY", "value": "20.0x"}), "not an amount"),
    (_first_info(transaction_amount={"currency_code": "CNY", "value": "-20.00"}), "wrong sign"),
    (_first_info(transaction_status="?"), "valid id, event code or status"),
])
def test_a_report_that_cannot_be_read_whole_fails_the_run_and_changes_nothing(paypal_shop, fake_paypal, bridge,
                                                                             mangler, words):
    order, _ = captured_unknown(paypal_shop, fake_paypal, bridge)
    fake_paypal.backdate(days=1)
    fake_paypal.report_mangler = mangler
    with pytest.raises(PaymentError, match=words) as caught:
        provider_for("paypal").settlement(yesterday())
    assert caught.value.retryable
    run = reconcile_day(provider_slug="paypal", day=yesterday())
    assert run.status == ReconciliationRun.Status.FAILED and "could not be read" in run.message
    assert not run.items.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT
