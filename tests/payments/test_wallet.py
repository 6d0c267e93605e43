"""The wallet provider: top-ups through the sandbox gateway, instant payments from the
balance, refunds back to it, and the ledger's database guarantees."""
from __future__ import annotations

import pytest
import requests
from django.db import IntegrityError, connection, transaction
from django_tenants.utils import tenant_context

from platform_core.customers.models import Customer, WalletEntry
from platform_core.customers.services import customer_register, wallet_credit
from platform_core.orders.models import Order
from platform_core.orders.services import order_delivered_items, order_refund, wallet_topup_order
from platform_core.payments.models import Payment, WebhookEvent
from platform_core.payments.services import payment_providers, payment_start, payments_poll_pending, provider_for
from plugins.payment import PaymentError
from plugins.services import plugin_configure
from tests.conftest import PASSWORD
from tests.payments.conftest import WEBHOOK_PATH, make_stock, place_order


@pytest.fixture
def wallet_shop(sandbox_shop):
    plugin_configure(shop=sandbox_shop, slug="wallet", data={}, enable=True)
    return sandbox_shop


@pytest.fixture
def customer(wallet_shop):
    return customer_register(login="wendy@example.com", password=PASSWORD)


def fund(customer, amount):
    wallet_credit(customer=customer, amount=amount, kind="adjustment", reference=f"test-fund-{amount}")


def pay_with_wallet(order):
    return payment_start(order=order, provider_slug="wallet", return_url="", notify_url="")


def test_wallet_is_offered_only_to_signed_in_buyers_and_never_for_top_ups(wallet_shop, customer):
    sku, _ = make_stock(wallet_shop)
    guest_order = place_order(sku, quantity=1)
    member_order = place_order(sku, quantity=1, customer=customer)
    topup = wallet_topup_order(customer=customer, amount=500)
    assert [p.slug for p in payment_providers(guest_order)] == ["sandbox"]
    assert sorted(p.slug for p in payment_providers(member_order)) == ["sandbox", "wallet"]
    assert [p.slug for p in payment_providers(topup)] == ["sandbox"]
    with pytest.raises(Exception, match="not available"):
        pay_with_wallet(guest_order)


def test_top_up_through_the_sandbox_credits_the_wallet(wallet_shop, customer, bridge):
    order = wallet_topup_order(customer=customer, amount=5000)
    payment, action = payment_start(order=order, provider_slug="sandbox", return_url="http://alpha.kameng.test/w/",
                                    notify_url=bridge.url(WEBHOOK_PATH))
    assert action.kind == "redirect"
    bridge.call(lambda: requests.post(f"{action.url}/pay", allow_redirects=False, timeout=15))
    order.refresh_from_db()
    customer.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert order.paid_at is not None and order.payment_method == "sandbox"  # one write, paid and completed
    assert [(e.from_status, e.to_status) for e in order.events.order_by("id")][1:] == [
        ("pending_payment", "paid"), ("paid", "completed")]
    assert customer.wallet_balance == 5000
    entry = WalletEntry.objects.get(customer=customer)
    assert (entry.kind, entry.amount, entry.balance_after, entry.order_id) == ("topup", 5000, 5000, order.pk)


def test_paying_from_the_wallet_debits_it_and_delivers_at_once(wallet_shop, customer):
    fund(customer, 5000)
    sku, plaintexts = make_stock(wallet_shop, keys=3, price=1500)
    order = place_order(sku, quantity=2, customer=customer)
    payment, action = pay_with_wallet(order)
    assert action.kind == "instant"
    order.refresh_from_db()
    payment.refresh_from_db()
    customer.refresh_from_db()
    assert payment.status == "succeeded" and payment.external_id == f"wallet:{payment.pk}"
    assert order.status == Order.Status.DELIVERED and order.payment_method == "wallet"
    assert customer.wallet_balance == 2000
    debit = WalletEntry.objects.get(kind="payment")
    assert (debit.amount, debit.balance_after, debit.reference, debit.order_id) == \
        (-3000, 2000, f"payment:{payment.pk}", order.pk)
    assert {item.secret for item in order_delivered_items(order)} <= set(plaintexts)
    assert len(order_delivered_items(order)) == 2
    assert WebhookEvent.objects.get(provider="wallet").event_id == f"wallet:{payment.pk}"
    # a second start for the paid order is refused; the money moved once
    with pytest.raises(PaymentError):
        pay_with_wallet(order)
    assert WalletEntry.objects.filter(kind="payment").count() == 1


def test_too_low_a_balance_is_refused_with_no_ledger_row(wallet_shop, customer):
    fund(customer, 999)
    sku, _ = make_stock(wallet_shop, price=1000)
    order = place_order(sku, quantity=1, customer=customer)
    with pytest.raises(PaymentError, match="Your wallet balance is too low"):
        pay_with_wallet(order)
    customer.refresh_from_db()
    order.refresh_from_db()
    assert customer.wallet_balance == 999
    assert not WalletEntry.objects.filter(kind="payment").exists()
    assert Payment.objects.get(order=order).status == "failed"
    assert order.status == Order.Status.PENDING_PAYMENT  # the buyer may still pay another way


def test_refund_returns_the_money_to_the_wallet(wallet_shop, customer):
    fund(customer, 3000)
    sku, _ = make_stock(wallet_shop, price=1000)
    order = place_order(sku, quantity=3, customer=customer)
    payment, _ = pay_with_wallet(order)
    order_refund(order=order, amount=1000, reason="Key 2 did not work", actor="staff@alpha.example")
    order_refund(order=order, amount=2000, reason="Customer changed their mind", actor="staff@alpha.example")
    customer.refresh_from_db()
    order.refresh_from_db()
    payment.refresh_from_db()
    assert customer.wallet_balance == 3000
    assert list(WalletEntry.objects.filter(kind="refund").values_list("amount", "reference")) == [
        (1000, f"refund:{payment.pk}:1"), (2000, f"refund:{payment.pk}:2")]
    assert payment.refunded_amount == 3000 and order.status == Order.Status.REFUNDED
    assert sorted(payment.refunds.values_list("status", flat=True)) == ["succeeded", "succeeded"]


def test_lost_instant_payment_is_settled_by_polling(wallet_shop, customer):
    """fetch_status reads the ledger: a debit that exists means paid, none means failed."""
    fund(customer, 1000)
    sku, _ = make_stock(wallet_shop, price=1000)
    order = place_order(sku, quantity=1, customer=customer)
    payment, _ = pay_with_wallet(order)
    provider = provider_for("wallet")
    assert provider.fetch_status(payment).status == "succeeded"
    stray = Payment.objects.create(order=place_order(sku, quantity=1, customer=customer), provider="wallet",
                                   amount=1000, currency="CNY")
    assert provider.fetch_status(stray).status == "failed"
    from datetime import timedelta

    Payment.objects.filter(pk=stray.pk).update(created_at=stray.created_at - timedelta(minutes=10))
    payments_poll_pending()
    assert Payment.objects.get(pk=stray.pk).status == "failed"


def test_the_database_refuses_a_negative_balance(wallet_shop, customer):
    fund(customer, 100)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE customers_customer SET wallet_balance = wallet_balance - 101 WHERE id = %s",
                       [customer.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        WalletEntry.objects.create(customer=customer, kind="adjustment", amount=-101, balance_after=-1)
    assert Customer.objects.get(pk=customer.pk).wallet_balance == 100


def test_wallets_belong_to_their_shop(wallet_shop, customer, bravo):
    fund(customer, 100)
    with tenant_context(bravo):
        assert not Customer.objects.filter(email="wendy@example.com").exists()
