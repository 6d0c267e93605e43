"""Reconciliation (对账) against the fake WeChat Pay's trade bill over real HTTP: the signed
bill request, the signed download whose SHA1 must match, the backtick CSV; each kind of
mismatch seeded the way it happens in life is found and can be fixed; a bill that cannot
be read whole, or does not match its hash, fails the run and changes nothing."""
from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone

import pytest

from platform_core.orders.models import Order
from platform_core.orders.services import order_refund
from platform_core.payments.models import Payment, ReconciliationItem, ReconciliationRun
from platform_core.payments.reconciliation import reconcile_day, reconciliation_fix
from platform_core.payments.services import provider_for
from plugins.payment import PaymentError
from plugins.payments.china import BEIJING
from plugins.payments.wechatpay import signing
from tests.fakegateways.wechatpay import certificate_pem, rsa_key, self_signed_certificate
from tests.payments.conftest import make_stock, place_order
from tests.payments.gateways.china_helpers import start_payment
from tests.payments.gateways.test_wechatpay import configure, shop, wechat  # noqa: F401 - fixtures

Kind = ReconciliationItem.Kind


def china_yesterday():
    return (datetime.now(BEIJING) - timedelta(days=1)).date()


def paid(shop, *, notify=True):
    started = start_payment(shop.shop, "wechatpay", shop.notify_url)
    if notify:
        shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id))
    else:
        shop.fake.pay(started["payment"].external_id, notify=False)
    started["payment"].refresh_from_db()
    return started


def findings(run):
    return {(item.kind, item.external_id): item for item in run.items.all()}


@pytest.fixture
def seeded(shop):
    """Yesterday (China time) at WeChat Pay: a payment refunded in part through Kameng, one
    refunded in the merchant platform (its notification lost), one whose amount Kameng has
    wrong, one whose notification was lost; and in Kameng a 'paid' payment WeChat never saw."""
    fake = shop.fake
    matched = paid(shop)
    order_refund(order=matched["order"], amount=500, reason="One key did not work", actor="staff@alpha.example")
    shop.bridge.pump(1)  # WeChat's REFUND.SUCCESS notification
    refunded = paid(shop)
    refund_no = fake.refund_outside(refunded["payment"].external_id, 700)
    tampered = paid(shop)
    Payment.objects.filter(pk=tampered["payment"].pk).update(amount=1900)
    lost = paid(shop, notify=False)
    fake.backdate(days=1)
    day = china_yesterday()
    sku, _ = make_stock(shop.shop, keys=1)
    forged_order = place_order(sku, quantity=1)
    forged = Payment.objects.create(
        order=forged_order, provider="wechatpay", amount=forged_order.total, currency="CNY", status="succeeded",
        external_id=f"{forged_order.number}P99999",
        succeeded_at=datetime.combine(day, time(12), tzinfo=dt_timezone.utc))
    return {"day": day, "matched": matched, "refunded": refunded, "refund_no": refund_no, "tampered": tampered,
            "lost": lost, "forged": forged}


def test_each_kind_of_mismatch_is_found_and_fixed(shop, seeded, alice):
    run = reconcile_day(provider_slug="wechatpay", day=seeded["day"])
    found = findings(run)
    lost, tampered = seeded["lost"]["payment"], seeded["tampered"]["payment"]
    assert set(found) == {
        (Kind.PAID_NOT_RECORDED, lost.external_id),
        (Kind.REFUND_NOT_RECORDED, seeded["refund_no"]),
        (Kind.AMOUNT_DIFFERS, tampered.external_id),
        (Kind.NOT_AT_GATEWAY, seeded["forged"].external_id),
    }, run.message
    assert run.gateway_payments == 4 and run.gateway_refunds == 2
    assert run.matched == 3  # two payments and the refund made through Kameng
    assert run.gateway_net == {"CNY": 4 * 2000 - 700 - 500}
    item = found[(Kind.PAID_NOT_RECORDED, lost.external_id)]
    assert (item.payment_id, item.gateway_amount) == (lost.pk, 2000)
    differs = found[(Kind.AMOUNT_DIFFERS, tampered.external_id)]
    assert (differs.gateway_amount, differs.kameng_amount) == (2000, 1900)
    refund = found[(Kind.REFUND_NOT_RECORDED, seeded["refund_no"])]
    assert (refund.payment_id, refund.gateway_amount) == (seeded["refunded"]["payment"].pk, 700)

    # the wire: both the bill request and the download are signed by the merchant
    asked, = shop.fake.received("GET", r"/v3/bill/tradebill")
    assert asked.query == {"bill_date": [seeded["day"].isoformat()], "bill_type": ["ALL"]}
    downloaded, = shop.fake.received("GET", r"/v3/billdownload/file")
    for request in (asked, downloaded):
        fields = signing.parse_authorization(request.headers["Authorization"])
        assert fields["mchid"] == shop.merchant.mchid and fields["serial_no"] == shop.merchant.serial_no
    assert not shop.fake.bill_tokens  # the link was used once

    reconciliation_fix(item_id=item.pk, actor=alice)
    reconciliation_fix(item_id=refund.pk, actor=alice)
    assert Order.objects.get(pk=seeded["lost"]["order"].pk).status == Order.Status.DELIVERED
    assert Order.objects.get(pk=seeded["refunded"]["order"].pk).refunded_amount == 700
    again = reconcile_day(provider_slug="wechatpay", day=seeded["day"])
    assert again.pk == run.pk and again.matched == 5 and again.open_items == 2


def test_rows_are_read_exactly_and_other_days_are_apart(shop):
    started = paid(shop)
    order_refund(order=started["order"], amount=2000, reason="Changed their mind", actor="staff@alpha.example")
    shop.bridge.pump(1)
    shop.fake.backdate(days=1)
    payment = started["payment"]
    lines = provider_for("wechatpay").settlement(china_yesterday())
    assert [(line.kind, line.external_id, line.payment_external_id, line.reference, line.amount, line.currency)
            for line in lines] == [
        ("payment", payment.external_id, payment.external_id, str(payment.pk), 2000, "CNY"),
        ("refund", f"{payment.external_id}R0T2000", payment.external_id, str(payment.pk), 2000, "CNY")]
    assert provider_for("wechatpay").settlement(china_yesterday() - timedelta(days=1)) == []


def test_a_day_without_a_bill_yet_is_a_retryable_failure_and_a_quiet_day_is_empty(shop):
    today = datetime.now(BEIJING).date()
    shop.fake.unpublished_dates.add(today.isoformat())
    with pytest.raises(PaymentError, match="has not published the bill") as caught:
        provider_for("wechatpay").settlement(today)
    assert caught.value.retryable
    quiet = today - timedelta(days=2)
    shop.fake.unpublished_dates.add(quiet.isoformat())
    assert provider_for("wechatpay").settlement(quiet) == []
    assert not shop.fake.received("GET", r"/v3/billdownload/file")


@pytest.mark.parametrize("spoil, words", [
    ({"bill_mangler": lambda text: text.replace("`2000", "`2001") + "x"}, "does not match its SHA1"),
    ({"bill_mangler": lambda text: text[: len(text) // 2]}, "does not match its SHA1"),
    ({"hash_mangler": lambda text: text.split("总交易单数")[0]}, "cut short"),
    ({"hash_mangler": lambda text: text.replace("\r\n`1,", "\r\n`2,")}, "totals say 2"),
    ({"hash_mangler": lambda text: text.replace("`SUCCESS,`OTHERS", "`PAYING,`OTHERS")}, "does not know"),
    ({"hash_mangler": lambda text: text.replace("`0.60%,`20.00,", "`0.60%,`20.0x,", 1)}, "not an amount"),
    ({"hash_mangler": lambda text: text.replace(",`CNY,", ",`USD,")}, "not CNY"),
    ({"hash_mangler": lambda text: text.replace("商户订单号", "商户单号")}, "column 商户订单号 is missing"),
    ({"hash_mangler": lambda text: text.replace("`SUCCESS,", "`SUCCESS,`extra,")}, "columns"),
    ({"hash_mangler": lambda text: "\ufeff" + text.replace("交易时间", "时间")}, "no header row"),
])
def test_a_bill_that_cannot_be_read_whole_fails_the_run_and_changes_nothing(shop, spoil, words):
    started = paid(shop, notify=False)  # a lost notification a good bill would reveal
    shop.fake.backdate(days=1)
    for name, function in spoil.items():
        setattr(shop.fake, name, function)
    with pytest.raises(PaymentError, match=words) as caught:
        provider_for("wechatpay").settlement(china_yesterday())
    assert caught.value.retryable
    run = reconcile_day(provider_slug="wechatpay", day=china_yesterday())
    assert run.status == ReconciliationRun.Status.FAILED and "could not be read" in run.message
    assert not run.items.exists()
    started["order"].refresh_from_db()
    assert started["order"].status == Order.Status.PENDING_PAYMENT


def test_a_bill_answer_signed_by_someone_else_is_not_believed(shop):
    paid(shop)
    shop.fake.backdate(days=1)
    configure(shop, platform_certificates=certificate_pem(self_signed_certificate(rsa_key("wechatpay-other"), "x")))
    run = reconcile_day(provider_slug="wechatpay", day=china_yesterday())
    assert run.status == ReconciliationRun.Status.FAILED and "did not verify" in run.message
    assert not shop.fake.received("GET", r"/v3/billdownload/file")


def test_a_download_link_to_another_host_is_not_followed(shop):
    paid(shop)
    shop.fake.backdate(days=1)
    original = shop.fake.trade_bill

    def elsewhere(request):
        reply = original(request)
        body = reply.body.decode().replace(shop.fake.base_url, "https://files.example.net")
        return shop.fake._reply(reply.status, json.loads(body))

    shop.fake._routes = [(m, p, elsewhere if h == original else h) for m, p, h in shop.fake._routes]
    with pytest.raises(PaymentError, match="no valid download link"):
        provider_for("wechatpay").settlement(china_yesterday())
