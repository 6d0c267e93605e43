"""Reconciliation (对账) against the fake Alipay's trade bill over real HTTP: the signed
download-link answer, the one-time link, the zip of GBK CSV files; each kind of mismatch
seeded the way it happens in life is found and can be fixed; a bill that cannot be read
whole fails the run instead of producing a half-true reconciliation."""
from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone

import pytest
import requests

from platform_core.orders.models import Order
from platform_core.orders.services import order_refund
from platform_core.payments.models import Payment, ReconciliationItem, ReconciliationRun
from platform_core.payments.reconciliation import reconcile_day, reconciliation_fix
from platform_core.payments.services import provider_for
from plugins.payment import PaymentError
from plugins.payments.alipay import bills, signing
from plugins.payments.china import BEIJING
from tests.fakegateways.alipay import beijing_now, rsa_key
from tests.payments.conftest import make_stock, place_order
from tests.payments.gateways.china_helpers import start_payment
from tests.payments.gateways.test_alipay import alipay, reconfigure, shop  # noqa: F401 - fixtures

Kind = ReconciliationItem.Kind


def china_yesterday():
    return (datetime.now(BEIJING) - timedelta(days=1)).date()


def opened(shop):
    """A payment started and the buyer at Alipay's cashier (the trade exists there)."""
    started = start_payment(shop.shop, "alipay", shop.notify_url)
    requests.get(started["action"].url, timeout=10)
    return started


def paid(shop, *, notify=True):
    started = opened(shop)
    if notify:
        shop.bridge.call(lambda: shop.fake.pay(started["payment"].external_id))
    else:
        shop.fake.pay(started["payment"].external_id, notify=False)
    started["payment"].refresh_from_db()
    return started


def findings(run):
    return {(item.kind, item.external_id): item for item in run.items.all()}


def bill_requests(fake):
    return [r for r in fake.received("POST", r"/gateway\.do") if r.form()["method"] == bills.METHOD]


@pytest.fixture
def seeded(shop):
    """Yesterday (China time) at Alipay: a payment refunded in part through Kameng, one
    refunded in the merchant console (its notification lost), one whose amount Kameng has
    wrong, one whose notification was lost, a sale of another integration; and in Kameng a
    'paid' payment Alipay never saw."""
    fake = shop.fake
    matched = paid(shop)
    order_refund(order=matched["order"], amount=500, reason="One key did not work", actor="staff@alpha.example")
    shop.bridge.pump(1)  # Alipay's refund notification
    refunded = paid(shop)
    refund_no = fake.refund_outside(refunded["payment"].external_id, 700, notify=False)
    tampered = paid(shop)
    Payment.objects.filter(pk=tampered["payment"].pk).update(amount=1900)
    lost = paid(shop, notify=False)
    with fake.lock:
        fake.trades["WEBSHOP-0001"] = {"app_id": shop.app_id, "out_trade_no": "WEBSHOP-0001", "subject": "Other",
                                       "trade_no": "2026112122001400000099", "total_amount": "42.00", "total": 4200,
                                       "status": "TRADE_SUCCESS", "refunded": 0, "paid_at": beijing_now()}
    fake.settle()
    fake.backdate(days=1)
    day = china_yesterday()
    sku, _ = make_stock(shop.shop, keys=1)
    forged_order = place_order(sku, quantity=1)
    forged = Payment.objects.create(
        order=forged_order, provider="alipay", amount=forged_order.total, currency="CNY", status="succeeded",
        external_id=f"{forged_order.number}P99999",
        succeeded_at=datetime.combine(day, time(12), tzinfo=dt_timezone.utc))
    return {"day": day, "matched": matched, "refunded": refunded, "refund_no": refund_no, "tampered": tampered,
            "lost": lost, "forged": forged}


def test_each_kind_of_mismatch_is_found_and_fixed(shop, seeded, alice):
    run = reconcile_day(provider_slug="alipay", day=seeded["day"])
    found = findings(run)
    lost, tampered = seeded["lost"]["payment"], seeded["tampered"]["payment"]
    assert set(found) == {
        (Kind.PAID_NOT_RECORDED, lost.external_id),
        (Kind.REFUND_NOT_RECORDED, seeded["refund_no"]),
        (Kind.AMOUNT_DIFFERS, tampered.external_id),
        (Kind.NOT_AT_GATEWAY, seeded["forged"].external_id),
    }, run.message
    assert run.gateway_payments == 4 and run.gateway_refunds == 2  # the other integration's sale is left out
    assert run.matched == 3  # two payments and the refund made through Kameng (RF0T500)
    assert run.gateway_net == {"CNY": 4 * 2000 - 700 - 500}
    item = found[(Kind.PAID_NOT_RECORDED, lost.external_id)]
    assert (item.payment_id, item.gateway_amount) == (lost.pk, 2000)
    assert (found[(Kind.AMOUNT_DIFFERS, tampered.external_id)].gateway_amount,
            found[(Kind.AMOUNT_DIFFERS, tampered.external_id)].kameng_amount) == (2000, 1900)
    refund = found[(Kind.REFUND_NOT_RECORDED, seeded["refund_no"])]
    assert (refund.payment_id, refund.gateway_amount) == (seeded["refunded"]["payment"].pk, 700)

    # the wire: a signed request for the China day's trade bill, then one download of the link
    asked, = bill_requests(shop.fake)
    assert json.loads(asked.form()["biz_content"]) == {"bill_type": "trade", "bill_date": seeded["day"].isoformat()}
    assert asked.form()["app_id"] == shop.app_id and asked.form()["sign_type"] == "RSA2"
    assert len(shop.fake.received("GET", r"/downloadBillFile\.resource")) == 1 and not shop.fake.bill_links

    reconciliation_fix(item_id=item.pk, actor=alice)
    reconciliation_fix(item_id=refund.pk, actor=alice)
    assert Order.objects.get(pk=seeded["lost"]["order"].pk).status == Order.Status.DELIVERED
    assert Order.objects.get(pk=seeded["refunded"]["order"].pk).refunded_amount == 700
    again = reconcile_day(provider_slug="alipay", day=seeded["day"])
    assert again.pk == run.pk and again.matched == 5 and again.open_items == 2


def test_the_bill_is_the_china_day_and_ids_and_signs_are_read_exactly(shop):
    started = paid(shop)
    order_refund(order=started["order"], amount=2000, reason="Changed their mind", actor="staff@alpha.example")
    shop.bridge.pump(1)
    shop.fake.backdate(days=1)
    lines = provider_for("alipay").settlement(china_yesterday())
    out_trade_no = started["payment"].external_id
    assert [(line.kind, line.external_id, line.payment_external_id, line.reference, line.amount, line.currency)
            for line in lines] == [("payment", out_trade_no, out_trade_no, str(started["payment"].pk), 2000, "CNY"),
                                   ("refund", "RF0T2000", out_trade_no, str(started["payment"].pk), 2000, "CNY")]
    assert provider_for("alipay").settlement(china_yesterday() - timedelta(days=1)) == []


def test_a_day_without_a_bill_yet_is_a_retryable_failure_and_a_quiet_day_is_empty(shop):
    today = datetime.now(BEIJING).date()
    shop.fake.unpublished_dates.add(today.isoformat())
    with pytest.raises(PaymentError, match="has not published the bill") as caught:
        provider_for("alipay").settlement(today)
    assert caught.value.retryable
    quiet = today - timedelta(days=2)  # long past publishing time: no bill means no trades
    shop.fake.unpublished_dates.add(quiet.isoformat())
    assert provider_for("alipay").settlement(quiet) == []
    assert not shop.fake.received("GET", r"/downloadBillFile\.resource")


def _zip_with(detail: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("2088_20261121_业务明细(汇总).csv", detail.encode("gbk"))
    return buffer.getvalue()


@pytest.mark.parametrize("spoil, words", [
    ({"bill": lambda text: text.replace("业务明细列表结束", "")}, "cut short"),
    ({"bill": lambda text: text.replace("交易合计：1笔", "交易合计：2笔")}, "totals line says 2"),
    ({"bill": lambda text: text.replace(",交易,", ",冻结,")}, "does not know"),
    ({"bill": lambda text: text.replace(",20.00,", ",20.0x,", 1)}, "not an amount"),
    ({"bill": lambda text: text.replace(",20.00,", ",-20.00,", 1)}, "a trade of -2000 fen"),
    ({"bill": lambda text: text.replace("商户订单号", "商户单号")}, "column 商户订单号 is missing"),
    ({"bill": lambda text: text.replace(",交易,", ",交易,,")}, "columns"),
    ({"zip": lambda data: data[: len(data) // 2]}, "not an intact zip"),
    ({"zip": lambda data: data[:60] + bytes(b ^ 0x55 for b in data[60:90]) + data[90:]}, "not an intact zip"),
    ({"zip": lambda data: b"<html>no bill</html>"}, "not an intact zip"),
    ({"zip": lambda data: _zip_with("x")}, "no single detail file"),
])
def test_a_bill_that_cannot_be_read_whole_fails_the_run_and_changes_nothing(shop, spoil, words):
    started = paid(shop, notify=False)  # a lost notification a good bill would reveal
    shop.fake.backdate(days=1)
    shop.fake.bill_mangler, shop.fake.zip_mangler = spoil.get("bill"), spoil.get("zip")
    with pytest.raises(PaymentError, match=words) as caught:
        provider_for("alipay").settlement(china_yesterday())
    assert caught.value.retryable
    run = reconcile_day(provider_slug="alipay", day=china_yesterday())
    assert run.status == ReconciliationRun.Status.FAILED and "could not be read" in run.message
    assert not run.items.exists()
    started["order"].refresh_from_db()
    assert started["order"].status == Order.Status.PENDING_PAYMENT


def test_a_link_in_an_answer_alipay_did_not_sign_is_not_followed(shop):
    paid(shop)
    shop.fake.backdate(days=1)
    reconfigure(shop, alipay_public_key=signing.public_key_text(rsa_key("alipay-other").public_key()))
    run = reconcile_day(provider_slug="alipay", day=china_yesterday())
    assert run.status == ReconciliationRun.Status.FAILED and "did not verify" in run.message
    assert not shop.fake.received("GET", r"/downloadBillFile\.resource")


def test_an_expired_link_fails_the_run_with_the_reason(shop):
    paid(shop)
    shop.fake.backdate(days=1)
    give_link = shop.fake._bill_url

    def link_then_expire(params, biz):
        answer = give_link(params, biz)
        shop.fake.bill_links.clear()  # more than 30 s pass before the download
        return answer

    shop.fake._bill_url = link_then_expire
    with pytest.raises(PaymentError, match="download answered 404"):
        provider_for("alipay").settlement(china_yesterday())
