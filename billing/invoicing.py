"""Invoices: monthly figures, gapless numbering, issuing, credit notes, PDF storage and
signed download links. Issued invoices never change (database triggers); a credit note
corrects them."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django_tenants.utils import schema_context

from billing.models import DailyUsage, Invoice, InvoiceCounter, InvoiceLine, PlanSpan, Subscription
from billing.services import BillingError, commission_for, div_round_half_up, month_bounds, prorate
from platform_core.audit.services import audit_record
from platform_core.money import format_minor

logger = logging.getLogger(__name__)
SERIES = {Invoice.Kind.INVOICE: "INV", Invoice.Kind.CREDIT_NOTE: "CN"}


@dataclass
class Draft:
    """An invoice before it is numbered: what the month costs, line by line."""

    currency: str
    lines: list[dict] = field(default_factory=list)

    @property
    def subtotal(self) -> int:
        return sum(line["amount"] for line in self.lines)


def _fmt_day(day: date) -> str:
    return f"{day:%Y-%m-%d}"


def monthly_draft(*, shop, year: int, month: int) -> Draft | None:
    """The month's figures for ``shop``: for each plan span that overlaps the month,
    the fee prorated by day and the commission on the GMV of those days. Each line is
    rounded on its own, half up (docs/billing.md)."""
    first, end, days_in_month = month_bounds(year, month)
    subscription = Subscription.objects.filter(shop_id=shop.pk).first()
    if subscription is None or subscription.complimentary:
        return None
    draft = Draft(currency=subscription.plan.currency)
    spans = PlanSpan.objects.select_related("plan").filter(subscription=subscription, charged=True, start__lt=end)
    for span in spans.order_by("start", "id"):
        span_start = max(span.start, first)
        span_end = min(span.end or end, end)
        days = (span_end - span_start).days
        if days <= 0:
            continue
        plan = span.plan
        period = f"{_fmt_day(span_start)} – {_fmt_day(span_end - timedelta(days=1))}"
        if plan.monthly_fee:
            draft.lines.append({
                "kind": "subscription", "quantity": days,
                "description": f"{plan.name} plan, {period} ({days} of {days_in_month} days)",
                "amount": prorate(plan.monthly_fee, days, days_in_month),
                "data": {"plan": plan.code, "fee": plan.monthly_fee, "days": days, "days_in_month": days_in_month}})
        gmv = DailyUsage.objects.filter(shop_id=shop.pk, day__gte=span_start, day__lt=span_end,
                                        currency=draft.currency).aggregate(total=Sum("gmv"))["total"] or 0
        if plan.commission_bp and gmv:
            draft.lines.append({
                "kind": "commission", "quantity": 1,
                "description": f"Commission {plan.commission_bp / 100:g} % on sales of "
                               f"{format_minor(gmv, draft.currency)}, {period}",
                "amount": commission_for(gmv, plan.commission_bp),
                "data": {"plan": plan.code, "gmv": gmv, "commission_bp": plan.commission_bp}})
    draft.lines = [line for line in draft.lines if line["amount"] > 0]
    return draft


def tax_for(subtotal: int, tax_bp: int) -> int:
    return div_round_half_up(subtotal * tax_bp, 10_000)


def _next_number(kind: str, year: int) -> tuple[int, str]:
    """The next number of the series, under a row lock held until our transaction ends:
    concurrent issuers queue here, and a rollback gives the number back."""
    series = SERIES[kind]
    with connection.cursor() as cursor:  # the first issue of a year creates the row; racers must not fail
        cursor.execute("INSERT INTO billing_invoicecounter (series, year, last_number) VALUES (%s, %s, 0) "
                       "ON CONFLICT (series, year) DO NOTHING", [series, year])
    counter = InvoiceCounter.objects.select_for_update().get(series=series, year=year)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return counter.last_number, f"{series}-{year}-{counter.last_number:06d}"


def _bill_to(shop) -> dict:
    from tenants.models import ShopMembership

    owner = ShopMembership.objects.select_related("merchant").filter(shop=shop, role="owner").order_by("pk").first()
    return {"shop": shop.name, "slug": shop.slug, "email": owner.merchant.email if owner else ""}


def _create(*, shop, kind: str, currency: str, lines: list[dict], period: tuple[date, date] | None = None,
            credits: Invoice | None = None, now: datetime) -> Invoice:
    """Number and write an invoice with its lines in the caller's transaction."""
    subtotal = sum(line["amount"] for line in lines)
    tax_bp = credits.tax_bp if credits is not None else settings.KAMENG_BILLING_TAX_BP
    tax = tax_for(subtotal, tax_bp)
    year = timezone.localdate(now).year
    sequence, number = _next_number(kind, year)
    invoice = Invoice.objects.create(
        shop=shop, kind=kind, number=number, year=year, sequence=sequence,
        period_start=period[0] if period else None, period_end=period[1] if period else None,
        currency=currency, subtotal=subtotal, tax_bp=tax_bp, tax=tax, total=subtotal + tax, credits=credits,
        line_count=len(lines),
        bill_to=_bill_to(shop), issued_at=now, due_at=now,
        status=Invoice.Status.OPEN if kind == Invoice.Kind.INVOICE else Invoice.Status.PAID,
        paid_at=None if kind == Invoice.Kind.INVOICE else now,
        next_attempt_at=now if kind == Invoice.Kind.INVOICE else None)
    InvoiceLine.objects.bulk_create([
        InvoiceLine(invoice=invoice, position=n, kind=line["kind"], description=line["description"][:200],
                    quantity=line.get("quantity", 1), amount=line["amount"], data=line.get("data", {}))
        for n, line in enumerate(lines, start=1)])
    return invoice


def invoice_issue_monthly(*, shop, year: int, month: int, now: datetime | None = None) -> Invoice | None:
    """Issue the invoice for ``year``/``month`` once. Running it again returns the same
    invoice; a month with nothing to charge issues none."""
    now = now or timezone.now()
    first, end, _ = month_bounds(year, month)
    if timezone.localdate(now) < end:
        raise BillingError("A month is invoiced only after it has ended.", code="month_not_over")
    existing = Invoice.objects.filter(shop_id=shop.pk, kind=Invoice.Kind.INVOICE, period_start=first).first()
    if existing is not None:
        return existing
    draft = monthly_draft(shop=shop, year=year, month=month)
    if draft is None or draft.subtotal == 0:
        return None
    try:
        with transaction.atomic():
            invoice = _create(shop=shop, kind=Invoice.Kind.INVOICE, currency=draft.currency, lines=draft.lines,
                              period=(first, end), now=now)
            audit_record(action="billing.invoice_issued", target=invoice,
                         data={"number": invoice.number, "shop": shop.slug, "total": invoice.total})
    except IntegrityError:
        # a concurrent run issued this month's invoice first (one_invoice_per_shop_period)
        existing = Invoice.objects.filter(shop_id=shop.pk, kind=Invoice.Kind.INVOICE, period_start=first).first()
        if existing is None:
            raise
        return existing
    transaction.on_commit(lambda: _after_issue(invoice.pk))
    return invoice


def _after_issue(invoice_id: int) -> None:
    from billing import tasks

    tasks.invoice_render_pdf.delay(invoice_id)


def credit_note_issue(*, invoice: Invoice, amount: int | None = None, reason: str, actor=None, request=None,
                      now: datetime | None = None) -> Invoice:
    """Correct an issued invoice: a credit note for ``amount`` of its subtotal (all of it
    by default). When nothing is left to pay the invoice is marked credited."""
    from billing.selectors import amount_due

    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("Give a reason for the credit note; it is printed on it.", field="reason")
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.kind != Invoice.Kind.INVOICE:
            raise BillingError("Only invoices can be credited.", code="not_an_invoice")
        already = -(invoice.credit_notes.aggregate(total=Sum("subtotal"))["total"] or 0)
        left = invoice.subtotal - already
        amount = left if amount is None else amount
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise BillingError("The credit must be a positive amount in minor units.", field="amount")
        if amount > left:
            raise BillingError(f"At most {format_minor(left, invoice.currency)} of this invoice can still be credited.",
                               field="amount", code="over_credit")
        note = _create(shop=invoice.shop, kind=Invoice.Kind.CREDIT_NOTE, currency=invoice.currency, credits=invoice,
                       lines=[{"kind": "credit", "description": f"Credit on {invoice.number}: {reason}",
                               "amount": -amount, "data": {"reason": reason}}], now=now)
        if invoice.status == Invoice.Status.OPEN and amount_due(invoice) == 0:
            invoice.status = Invoice.Status.CREDITED
            invoice.next_attempt_at = None
            invoice.save(update_fields=["status", "next_attempt_at"])
        audit_record(action="billing.credit_note_issued", actor=actor, target=note, request=request, reason=reason,
                     data={"number": note.number, "credits": invoice.number, "amount": amount})
    transaction.on_commit(lambda: _after_issue(note.pk))
    return note


# --- PDF storage and signed links -------------------------------------------------------

def _storage():
    return storages[settings.KAMENG_BILLING_STORAGE]


def pdf_key_for(invoice: Invoice) -> str:
    return f"invoices/{invoice.year}/{invoice.number}.pdf"


def invoice_store_pdf(*, invoice: Invoice) -> str:
    """Render and store the PDF once; the key is recorded on the invoice."""
    from billing.pdf import render_invoice_pdf

    if invoice.pdf_key:
        return invoice.pdf_key
    content = render_invoice_pdf(invoice)
    with schema_context("public"):  # the storage prefixes paths by schema: invoices are the platform's
        name = _storage().save(pdf_key_for(invoice), ContentFile(content))
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.pdf_key:
            return locked.pdf_key
        locked.pdf_key = name
        locked.save(update_fields=["pdf_key"])
    invoice.pdf_key = name
    return name


LINK_SALT = "billing.invoice-download"
S3_REDIRECT_SECONDS = 60  # the presigned object URL a valid link redirects to lives this long


def invoice_download_url(*, invoice: Invoice, host_prefix: str = "/manage") -> str:
    """A signed link that works for ``KAMENG_BILLING_LINK_SECONDS``. It names the invoice
    and its stored PDF; :func:`invoice_open_signed` checks signature and age."""
    if not invoice.pdf_key:
        invoice_store_pdf(invoice=invoice)
    token = signing.dumps({"invoice": invoice.pk, "key": invoice.pdf_key}, salt=LINK_SALT, compress=True)
    return f"{host_prefix}/billing/file/{token}/"


def invoice_open_signed(token: str) -> tuple[Invoice, str | None, object | None]:
    """For a valid token: (invoice, presigned S3 URL, None) when the storage is S3 (the
    object store serves it, signed for a minute), else (invoice, None, open file).
    Raises ``signing.BadSignature`` (``SignatureExpired`` when too old)."""
    data = signing.loads(token, salt=LINK_SALT, max_age=settings.KAMENG_BILLING_LINK_SECONDS)
    invoice = Invoice.objects.get(pk=data["invoice"], pdf_key=data["key"])
    storage = _storage()
    with schema_context("public"):  # the storage prefix follows the schema; invoices live under "platform"
        if hasattr(storage, "bucket_name"):
            return invoice, storage.url(invoice.pdf_key, expire=S3_REDIRECT_SECONDS), None
        return invoice, None, storage.open(invoice.pdf_key, "rb")


def invoices_issue_last_month(now: datetime | None = None) -> int:
    """Beat job (daily; does its work once a month): re-meter every day of last month,
    then issue last month's invoice of every subscribed shop. Re-runs find the issued
    invoices and change nothing."""
    from billing.metering import usage_meter_day

    now = now or timezone.now()
    this_month = timezone.localdate(now).replace(day=1)
    last = this_month - timedelta(days=1)
    first, end, _ = month_bounds(last.year, last.month)
    issued = 0
    for subscription in Subscription.objects.select_related("shop").exclude(shop__status__in=["template", "spare"]):
        shop = subscription.shop
        if Invoice.objects.filter(shop_id=shop.pk, kind=Invoice.Kind.INVOICE, period_start=first).exists():
            continue
        day = first
        while day < end:
            usage_meter_day(shop=shop, day=day)
            day += timedelta(days=1)
        if invoice_issue_monthly(shop=shop, year=last.year, month=last.month, now=now) is not None:
            issued += 1
    return issued
