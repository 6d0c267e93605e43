"""Payment fees per method (decisions 0025-0027): the arithmetic, the rule and who may
set it, the buyer paying total + fee through the real sandbox gateway, the shop bearing
it, refunds returning the buyer's fee only with a full refund, and no fee on the wallet."""
from __future__ import annotations

import pytest
import requests
from django.db import IntegrityError, transaction
from django_tenants.utils import tenant_context

from platform_core.audit.models import AuditEvent
from platform_core.orders.models import Order
from platform_core.orders.services import OrderError, order_delivered_items, order_refund
from platform_core.payments.fees import FeeQuote, fee_for_amount
from platform_core.payments.models import Payment, PaymentMethodFee, Refund
from platform_core.payments.selectors import fee_quote, order_payment_methods
from platform_core.payments.services import FeeError, payment_method_fee_set, payment_refund, payment_start
from plugins.payment import PaymentError
from plugins.payments.sandbox.plugin import SandboxPaymentPlugin
from plugins.payments.wallet.plugin import WalletPaymentPlugin
from tests.payments.conftest import WEBHOOK_PATH, make_stock, place_order
from tests.payments.test_sandbox import RETURN_URL, click, gateway_payment

# --- the arithmetic ----------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "fixed", "bp", "fee"), [
    (0, 30, 60, 0),  # nothing to pay, no fee, not even the fixed part
    (-5, 30, 60, 0),
    (1, 0, 60, 0),  # 0.006 of a fen rounds to nothing
    (1, 1, 0, 1),
    (83, 0, 60, 0),  # 0.498 -> 0
    (84, 0, 60, 1),  # 0.504 -> 1
    (25, 0, 200, 1),  # exactly half: rounds up
    (75, 0, 200, 2),  # 1.5 -> 2
    (2000, 30, 60, 42),  # 30 + 12
    (1999, 0, 60, 12),  # 11.994 -> 12
    (10_000, 0, 2000, 2000),  # the largest percentage a rule allows: 20 %
    (10_000_000, 100_000, 2000, 2_100_000),  # the largest order, the largest rule
    (999, 0, 0, 0),
])
def test_fee_arithmetic(amount, fixed, bp, fee):
    assert fee_for_amount(amount, fixed=fixed, basis_points=bp) == fee


@pytest.mark.parametrize("bad", [1.5, "10", True, None])
def test_fee_arithmetic_takes_only_integers(bad):
    with pytest.raises(TypeError):
        fee_for_amount(bad, fixed=0, basis_points=60)
    with pytest.raises(TypeError):
        fee_for_amount(1000, fixed=bad, basis_points=60)


def test_fee_arithmetic_refuses_negative_rules():
    with pytest.raises(ValueError):
        fee_for_amount(1000, fixed=-1, basis_points=0)
    with pytest.raises(ValueError):
        fee_for_amount(1000, fixed=0, basis_points=-1)


def test_quote_adds_the_fee_only_when_the_buyer_pays_it():
    passed = FeeQuote(provider="sandbox", order_total=2000, fee=42, passed_to_buyer=True)
    borne = FeeQuote(provider="sandbox", order_total=2000, fee=42, passed_to_buyer=False)
    assert (passed.buyer_fee, passed.amount) == (42, 2042)
    assert (borne.buyer_fee, borne.amount) == (0, 2000)


# --- the rule ----------------------------------------------------------------------------

def test_owner_sets_a_fee_and_it_is_audited(alpha, alice):
    with tenant_context(alpha):
        payment_method_fee_set(provider_slug="sandbox", fixed=30, basis_points=60, passed_to_buyer=True,
                               actor=alice)
        payment_method_fee_set(provider_slug="sandbox", fixed=0, basis_points=100, passed_to_buyer=False,
                               actor=alice)
        rule = PaymentMethodFee.objects.get(provider="sandbox")
        assert (rule.fixed, rule.basis_points, rule.passed_to_buyer, rule.updated_by) == \
            (0, 100, False, "alice@example.com")
        first, second = AuditEvent.objects.filter(action="payment_fee.changed").order_by("id")
        assert first.data["before"] is None and first.actor_email == "alice@example.com"
        assert second.data["before"] == {"fixed": 30, "basis_points": 60, "passed_to_buyer": True}
        assert second.data["after"] == {"fixed": 0, "basis_points": 100, "passed_to_buyer": False}


@pytest.mark.parametrize(("slug", "fixed", "bp", "field", "code"), [
    ("sandbox", -1, 60, "fixed", "invalid"),
    ("sandbox", 100_001, 60, "fixed", "invalid"),
    ("sandbox", 0, -1, "basis_points", "invalid"),
    ("sandbox", 0, 2001, "basis_points", "invalid"),
    ("sandbox", 1.5, 60, "fixed", "invalid"),
    ("sandbox", 0, True, "basis_points", "invalid"),
    ("no-such-gateway", 0, 60, "provider", "unknown_provider"),
    ("store-notice", 0, 60, "provider", "unknown_provider"),  # a plugin, but not a payment method
    ("wallet", 0, 60, "provider", "no_fees"),
])
def test_bad_fee_rules_are_refused_and_nothing_is_written(alpha, alice, slug, fixed, bp, field, code):
    with tenant_context(alpha):
        with pytest.raises(FeeError) as refused:
            payment_method_fee_set(provider_slug=slug, fixed=fixed, basis_points=bp, passed_to_buyer=True,
                                   actor=alice)
        assert (refused.value.field, refused.value.code) == (field, code)
        assert refused.value.message
        assert not PaymentMethodFee.objects.exists()
        assert not AuditEvent.objects.filter(action="payment_fee.changed").exists()


def test_the_database_refuses_out_of_range_rules_and_fees(alpha):
    with tenant_context(alpha):
        for values in ({"fixed": -1}, {"basis_points": 2001}, {"basis_points": -1}, {"fixed": 100_001}):
            with pytest.raises(IntegrityError), transaction.atomic():
                PaymentMethodFee.objects.create(provider="sandbox", **values)
        order = place_order(make_stock(alpha, keys=1)[0], quantity=1)
        with pytest.raises(IntegrityError), transaction.atomic():  # a buyer's fee is never the whole amount
            Payment.objects.create(order=order, provider="sandbox", amount=100, currency="CNY", fee=100,
                                   fee_paid_by_buyer=True)
        with pytest.raises(IntegrityError), transaction.atomic():
            Payment.objects.create(order=order, provider="sandbox", amount=100, currency="CNY", fee=-1)


def test_fee_rules_belong_to_one_shop(alpha, bravo, alice):
    with tenant_context(alpha):
        payment_method_fee_set(provider_slug="sandbox", fixed=30, basis_points=60, passed_to_buyer=True, actor=alice)
    with tenant_context(bravo):
        assert not PaymentMethodFee.objects.exists()
        assert fee_quote(provider=SandboxPaymentPlugin, order_total=2000).fee == 0


def test_the_wallet_never_carries_a_fee(alpha):
    with tenant_context(alpha):
        # even a rule written past the service does not apply to the wallet
        PaymentMethodFee.objects.create(provider="wallet", fixed=50, basis_points=100, passed_to_buyer=True)
        quote = fee_quote(provider=WalletPaymentPlugin, order_total=2000)
        assert (quote.fee, quote.amount) == (0, 2000)


# --- paying with a fee, through the real sandbox gateway ---------------------------------

def _set_fee(shop, *, fixed=30, bp=60, passed=True):
    payment_method_fee_set(provider_slug="sandbox", fixed=fixed, basis_points=bp, passed_to_buyer=passed,
                           actor="owner@example.com")


def _pay_with_sandbox(shop, bridge, *, quantity=2, price=1000):
    sku, plaintexts = make_stock(shop, keys=3, price=price)
    order = place_order(sku, quantity=quantity)
    payment, action = payment_start(order=order, provider_slug="sandbox", return_url=RETURN_URL,
                                    notify_url=bridge.url(WEBHOOK_PATH))
    return sku, plaintexts, order, payment, action


def test_buyer_pays_total_plus_fee_at_the_gateway_and_the_order_is_delivered(sandbox_shop, gateway, api_key,
                                                                              bridge):
    _set_fee(sandbox_shop)
    methods = {m.slug: m.quote for m in order_payment_methods(place_order(make_stock(sandbox_shop)[0]))}
    assert (methods["sandbox"].buyer_fee, methods["sandbox"].amount) == (42, 2042)  # what the buyer is shown

    sku, plaintexts, order, payment, action = _pay_with_sandbox(sandbox_shop, bridge)
    payment.refresh_from_db()
    assert (payment.amount, payment.fee, payment.fee_paid_by_buyer) == (2042, 42, True)
    at_gateway = gateway_payment(gateway, api_key, payment.external_id)
    assert at_gateway["amount"] == 2042 and at_gateway["currency"] == "CNY"
    assert "20.42 CNY" in requests.get(action.url, timeout=10).text  # the gateway's pay page asks for it

    response = bridge.call(lambda: click(action.url))
    assert response.status_code == 303
    (_, answer), = bridge.log
    assert answer.status == 200
    order.refresh_from_db()
    payment.refresh_from_db()
    assert payment.status == "succeeded" and order.status == Order.Status.DELIVERED
    assert order.total == 2000  # the goods' total; the fee lives on the payment
    assert len(order_delivered_items(order)) == 2


def test_a_shop_borne_fee_is_recorded_but_not_charged(sandbox_shop, gateway, api_key, bridge, shop_client, alice):
    _set_fee(sandbox_shop, passed=False)
    _, _, order, payment, action = _pay_with_sandbox(sandbox_shop, bridge)
    payment.refresh_from_db()
    assert (payment.amount, payment.fee, payment.fee_paid_by_buyer, payment.buyer_fee) == (2000, 42, False, 0)
    assert gateway_payment(gateway, api_key, payment.external_id)["amount"] == 2000
    bridge.call(lambda: click(action.url))
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    # the shop sees its cost on the order in the console
    page = shop_client(sandbox_shop, alice).get(f"/manage/orders/order/{order.pk}/change/")
    assert page.status_code == 200 and "¥0.42 (borne by the shop)" in page.content.decode()
    order_refund(order=order, amount=2000, reason="Changed their mind", actor="staff@alpha.example")
    payment.refresh_from_db()
    assert payment.refunded_amount == 2000  # the shop's own cost is nobody's refund
    assert gateway_payment(gateway, api_key, payment.external_id)["amount_refunded"] == 2000


def test_a_gateway_event_for_the_total_without_the_fee_does_not_pay(sandbox_shop, bridge):
    from platform_core.payments.services import record_event
    from plugins.payment import GatewayEvent

    _set_fee(sandbox_shop)
    _, _, order, payment, _ = _pay_with_sandbox(sandbox_shop, bridge)
    result = record_event(provider="sandbox", event=GatewayEvent(
        event_id="evt_short", kind="payment.succeeded", payment_reference=str(payment.pk),
        external_id=payment.external_id or "", amount=2000, currency="CNY"))
    assert result == "amount_mismatch"
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


# --- refunds: the buyer's fee goes back with the full refund only ------------------------

def _paid_with_fee(shop, bridge):
    _set_fee(shop)
    _, _, order, payment, action = _pay_with_sandbox(shop, bridge)
    bridge.call(lambda: click(action.url))
    order.refresh_from_db()
    payment.refresh_from_db()
    assert payment.status == "succeeded" and payment.amount == 2042
    return order, payment


def test_partial_refunds_keep_the_fee_and_the_last_one_returns_it(sandbox_shop, gateway, api_key, bridge):
    order, payment = _paid_with_fee(sandbox_shop, bridge)
    order_refund(order=order, amount=1999, reason="Most of it", actor="staff@alpha.example")
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.refunded_amount, order.refunded_amount) == (1999, 1999)
    assert order.status == Order.Status.DELIVERED

    with pytest.raises(OrderError, match="exceeds"):  # the fee is not the shop's to give in order terms
        order_refund(order=order, amount=2, reason="too much", actor="staff@alpha.example")

    order_refund(order=order, amount=1, reason="The rest", actor="staff@alpha.example")
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.refunded_amount, order.refunded_amount) == (2042, 2000)
    assert order.status == Order.Status.REFUNDED
    assert sorted(Refund.objects.filter(payment=payment).values_list("amount", flat=True)) == [43, 1999]
    assert gateway_payment(gateway, api_key, payment.external_id)["amount_refunded"] == 2042
    assert order.events.get(kind="order.refunded").data["fee_returned"] == 42


def test_a_full_refund_at_once_returns_the_fee(sandbox_shop, gateway, api_key, bridge):
    order, payment = _paid_with_fee(sandbox_shop, bridge)
    order_refund(order=order, amount=2000, reason="Out of stock", actor="staff@alpha.example")
    payment.refresh_from_db()
    assert payment.refunded_amount == 2042
    assert gateway_payment(gateway, api_key, payment.external_id)["amount_refunded"] == 2042


def test_a_payment_refund_that_would_cut_into_the_fee_is_refused(sandbox_shop, bridge):
    order, payment = _paid_with_fee(sandbox_shop, bridge)
    with transaction.atomic():
        Order.objects.select_for_update().get(pk=order.pk)
        with pytest.raises(PaymentError, match="only with a full refund"):
            payment_refund(payment=payment, amount=2001, reason="eats 1 of the fee", actor="staff")  # leaves 41
        with pytest.raises(PaymentError, match="exceeds"):
            payment_refund(payment=payment, amount=2043, reason="more than paid", actor="staff")
    payment.refresh_from_db()
    assert payment.refunded_amount == 0 and not Refund.objects.filter(payment=payment).exists()
    with transaction.atomic():  # leaving exactly the fee (a partial of the goods) is fine
        Order.objects.select_for_update().get(pk=order.pk)
        payment_refund(payment=payment, amount=2000, reason="goods only", actor="staff")
    payment.refresh_from_db()
    assert payment.refunded_amount == 2000


def test_a_refund_of_everything_made_at_the_gateway_refunds_the_order(sandbox_shop, gateway, api_key, bridge):
    order, payment = _paid_with_fee(sandbox_shop, bridge)
    requests.post(f"{gateway.base}/v1/payments/{payment.external_id}/refunds", data={"amount": 2042},
                  headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    bridge.pump(1)
    order.refresh_from_db()
    payment.refresh_from_db()
    assert payment.refunded_amount == 2042
    assert order.status == Order.Status.REFUNDED and order.refunded_amount == 2000  # the order counts its total
