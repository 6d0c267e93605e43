"""Monthly invoice figures, worked out by hand, and the rules around issued invoices."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django_tenants.utils import tenant_context

from billing import invoicing, services
from billing.metering import usage_meter_day
from billing.models import DailyUsage, Invoice, InvoiceLine, PlanSpan, Subscription
from billing.selectors import amount_due
from platform_core.orders.services import LineRequest, order_place, order_refund
from tests.commerce_helpers import make_product, pay
from tests.console.fixtures import REFUND_PROVIDER, refund_gateway  # noqa: F401

SH = ZoneInfo("Asia/Shanghai")  # settings.TIME_ZONE: billing days and months are in it


def at(*args) -> datetime:
    return datetime(*args, tzinfo=SH)


def start_paid_subscription(shop, *, plan="pro", trial_end: datetime):
    """Reset the shop's subscription to a trial that ends at ``trial_end`` on ``plan``."""
    sub = Subscription.objects.get(shop=shop)
    PlanSpan.objects.filter(subscription=sub).delete()
    sub.plan = services.plan_get(plan)
    sub.status, sub.trial_ends_at = "trial", trial_end
    sub.save()
    PlanSpan.objects.create(subscription=sub, plan=sub.plan, start=trial_end.date().replace(day=1), charged=False)
    services.subscriptions_roll(now=trial_end)
    sub.refresh_from_db()
    assert sub.status == "active"
    return sub


def sell(shop, when: datetime, price: int):
    with time_machine.travel(when, tick=False), tenant_context(shop):
        sku = make_product(keys=1, price=price, name=f"Card {price}")
        order = order_place(lines=[LineRequest(sku.pk, 1)], contact=f"b{price}@example.com", query_password="1234")
        assert pay(order, provider=REFUND_PROVIDER) == "paid"
        order.refresh_from_db()
        return order


def refund(shop, when: datetime, order, amount: int):
    with time_machine.travel(when, tick=False), tenant_context(shop):
        order_refund(order=order, amount=amount, reason="bad key", actor="staff")


@override_settings(KAMENG_BILLING_TAX_BP=600)
def test_may_with_mid_month_upgrade_refunds_and_uneven_days(alpha, refund_gateway):  # noqa: F811
    start_paid_subscription(alpha, plan="pro", trial_end=at(2026, 5, 1, 0, 0))
    # sales: three in the Pro days, a refund in each part, one at 23:30 on the last evening,
    # one before and one after the month (midnight in Shanghai, not UTC, is the border)
    sell(alpha, at(2026, 4, 30, 23, 30), 999)          # April: not this invoice
    small = sell(alpha, at(2026, 5, 5, 10, 0), 1033)
    big = sell(alpha, at(2026, 5, 10, 10, 0), 2000)
    refund(alpha, at(2026, 5, 12, 9, 0), big, 500)
    with time_machine.travel(at(2026, 5, 14, 12, 0), tick=False):
        services.subscription_change_plan(shop=alpha, plan_code="business")
    sell(alpha, at(2026, 5, 20, 10, 0), 3001)
    refund(alpha, at(2026, 5, 21, 10, 0), small, 1033)  # a Pro-days sale refunded in Business days
    sell(alpha, at(2026, 5, 31, 23, 30), 777)           # 15:30 UTC: still May here
    sell(alpha, at(2026, 6, 1, 0, 10), 1111)            # 16:10 UTC on 31 May, but June here

    with time_machine.travel(at(2026, 6, 1, 3, 0), tick=False):
        assert invoicing.invoices_issue_last_month() == 1
    invoice = Invoice.objects.get(shop=alpha)
    lines = [(line.kind, line.amount) for line in invoice.lines.all()]
    # Hand-worked (May has 31 days; each line rounded half up on its own):
    #   Pro 1–13 May, 13 days:       9900 * 13 / 31 = 4151.61  -> 4152
    #   Pro GMV 1033 + 2000 - 500 = 2533; 1.5 %:  37.995  -> 38
    #   Business 14–31 May, 18 days: 29900 * 18 / 31 = 17361.29 -> 17361
    #   Business GMV 3001 + 777 - 1033 = 2745; 0.5 %: 13.725 -> 14
    assert lines == [("subscription", 4152), ("commission", 38), ("subscription", 17361), ("commission", 14)]
    assert invoice.subtotal == 21565
    assert invoice.tax_bp == 600 and invoice.tax == 1294  # 21565 * 6 % = 1293.90
    assert invoice.total == 22859
    assert (invoice.period_start.isoformat(), invoice.period_end.isoformat()) == ("2026-05-01", "2026-06-01")
    assert invoice.number == "INV-2026-000001" and invoice.status == "open"
    assert invoice.bill_to["email"] == "alice@example.com"
    assert DailyUsage.objects.get(shop=alpha, day="2026-05-31").gmv == 777
    assert DailyUsage.objects.get(shop=alpha, day="2026-05-21").gmv == -1033  # a refund only
    assert DailyUsage.objects.get(shop=alpha, day="2026-05-12").refunded_amount == 500

    # metering again and running the monthly job again change nothing
    with time_machine.travel(at(2026, 6, 2, 3, 0), tick=False):
        for day in range(1, 32):
            usage_meter_day(shop=alpha, day=datetime(2026, 5, day).date())
        assert invoicing.invoices_issue_last_month(now=at(2026, 6, 1, 4, 0)) == 0
    assert Invoice.objects.filter(shop=alpha).count() == 1
    assert list(Invoice.objects.get(shop=alpha).lines.values_list("amount", flat=True)) == [4152, 38, 17361, 14]


def test_metering_a_day_twice_gives_the_same_row(alpha, refund_gateway):  # noqa: F811
    order = sell(alpha, at(2026, 3, 3, 12, 0), 2500)
    refund(alpha, at(2026, 3, 3, 18, 0), order, 700)
    first = usage_meter_day(shop=alpha, day=at(2026, 3, 3).date())
    again = usage_meter_day(shop=alpha, day=at(2026, 3, 3).date())
    assert first.pk == again.pk and DailyUsage.objects.filter(shop=alpha).count() == 1
    assert (again.paid_amount, again.refunded_amount, again.gmv, again.paid_orders) == (2500, 700, 1800, 1)


def test_rounding_is_half_up_in_integers():
    assert services.div_round_half_up(5, 10) == 1          # 0.5 -> 1
    assert services.div_round_half_up(14, 10) == 1         # 1.4 -> 1
    assert services.div_round_half_up(15, 10) == 2         # 1.5 -> 2
    assert services.prorate(100, 1, 3) == 33 and services.prorate(100, 2, 3) == 67  # 33.3 / 66.7
    assert services.commission_for(3333, 150) == 50        # 49.995 -> 50
    assert services.commission_for(-5000, 150) == 0        # refunds over sales: no commission, no credit


def _issue(shop, *, year=2026, month=1):
    start_paid_subscription(shop, plan="pro", trial_end=at(year, month, 1, 0, 0))
    return invoicing.invoice_issue_monthly(shop=shop, year=year, month=month, now=at(year, month + 1, 1, 1, 0))


def test_a_month_is_invoiced_only_after_it_ended(alpha):
    start_paid_subscription(alpha, plan="pro", trial_end=at(2026, 1, 1, 0, 0))
    with pytest.raises(services.BillingError, match="only after it has ended"):
        invoicing.invoice_issue_monthly(shop=alpha, year=2026, month=1, now=at(2026, 1, 31, 23, 0))
    assert not Invoice.objects.exists()


def test_issued_invoices_cannot_change_in_the_database(alpha):
    invoice = _issue(alpha)
    assert invoice.total == 9900  # a whole month of Pro
    for statement, params in [
        ("UPDATE billing_invoice SET total = 1, subtotal = 1 WHERE id = %s", [invoice.pk]),
        ("DELETE FROM billing_invoice WHERE id = %s", [invoice.pk]),
        ("UPDATE billing_invoiceline SET amount = 1 WHERE invoice_id = %s", [invoice.pk]),
        ("DELETE FROM billing_invoiceline WHERE invoice_id = %s", [invoice.pk]),
    ]:
        with pytest.raises(Exception, match="cannot"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, params)
    # collection state may change
    Invoice.objects.filter(pk=invoice.pk).update(attempt_count=1)
    invoice.refresh_from_db()
    assert invoice.total == 9900 and invoice.attempt_count == 1


def test_lines_cannot_be_added_after_issue(alpha):
    invoice = _issue(alpha)
    with pytest.raises(Exception, match="lines cannot be added"), transaction.atomic():
        InvoiceLine.objects.create(invoice=invoice, position=9, kind="subscription", description="extra", amount=1)


def test_credit_note_corrects_an_invoice(alpha):
    invoice = _issue(alpha)
    with pytest.raises(services.BillingError, match="reason"):
        invoicing.credit_note_issue(invoice=invoice, amount=100, reason=" ")
    for bad in (0, -5, 9901, "100"):
        with pytest.raises(services.BillingError):
            invoicing.credit_note_issue(invoice=invoice, amount=bad, reason="goodwill")
    note = invoicing.credit_note_issue(invoice=invoice, amount=2000, reason="outage on 3 Jan")
    assert (note.number, note.kind, note.subtotal, note.total, note.credits_id) == (
        "CN-2026-000001", "credit_note", -2000, -2000, invoice.pk)
    invoice.refresh_from_db()
    assert invoice.status == "open" and amount_due(invoice) == 7900
    invoicing.credit_note_issue(invoice=invoice, reason="waived")  # the rest
    invoice.refresh_from_db()
    assert invoice.status == "credited" and amount_due(invoice) == 0
    with pytest.raises(services.BillingError, match="At most"):
        invoicing.credit_note_issue(invoice=invoice, amount=1, reason="again")


def test_a_free_month_issues_no_invoice(alpha):
    start_paid_subscription(alpha, plan="pro", trial_end=at(2026, 2, 1, 0, 0))
    with time_machine.travel(at(2026, 2, 1, 12, 0), tick=False):
        services.subscription_change_plan(shop=alpha, plan_code="free")
    assert invoicing.invoice_issue_monthly(shop=alpha, year=2026, month=2, now=at(2026, 3, 1, 1, 0)) is None
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(shop=alpha, number="X", year=2026, sequence=1, currency="CNY", subtotal=5, tax=0,
                               total=6, due_at=at(2026, 3, 1))


@pytest.mark.parametrize("unicode_font", [True, False])
def test_pdf_renders_chinese_names_with_or_without_a_unicode_font(alpha, monkeypatch, unicode_font, settings,
                                                                  tmp_path):
    from billing import pdf

    settings.MEDIA_ROOT = str(tmp_path)
    if not unicode_font:
        monkeypatch.setattr(pdf, "_font_path", lambda: None)
    alpha.name = "卡盟小店"
    alpha.save()
    invoice = _issue(alpha)
    assert invoice.bill_to["shop"] == "卡盟小店"
    key = invoicing.invoice_store_pdf(invoice=invoice)
    assert (tmp_path / key).read_bytes().startswith(b"%PDF")


def test_zero_decimal_currency_plan_from_mid_month(alpha, refund_gateway):  # noqa: F811
    from billing.models import Plan

    Plan.objects.create(code="yen", name="Yen", monthly_fee=1000, currency="JPY", commission_bp=150)
    alpha.currency = "JPY"
    alpha.save()
    start_paid_subscription(alpha, plan="yen", trial_end=at(2026, 1, 11, 0, 0))
    sell(alpha, at(2026, 1, 5, 12, 0), 5000)   # during the trial: no commission
    sell(alpha, at(2026, 1, 20, 12, 0), 999)
    with time_machine.travel(at(2026, 2, 1, 2, 0), tick=False):
        assert invoicing.invoices_issue_last_month() == 1
    invoice = Invoice.objects.get(shop=alpha)
    # JPY has no minor unit: 1000 * 21 / 31 = 677.42 -> 677; 999 * 1.5 % = 14.985 -> 15
    assert [(line.kind, line.amount) for line in invoice.lines.all()] == [("subscription", 677), ("commission", 15)]
    assert (invoice.currency, invoice.total) == ("JPY", 692)
    assert "21 of 31 days" in invoice.lines.first().description
