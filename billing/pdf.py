"""Invoice PDFs with fpdf2 (pure Python: no system libraries, unlike WeasyPrint).

A Unicode TrueType font is used when one is found (``KAMENG_BILLING_PDF_FONT`` or
DejaVu Sans); shop names in Chinese need a CJK font there (e.g. Noto Sans CJK).
Without one, the built-in Helvetica is used and characters outside Latin-1 print as "?".
"""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from fpdf import FPDF

from platform_core.money import format_minor

FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf")


def _font_path() -> str | None:
    configured = os.environ.get("KAMENG_BILLING_PDF_FONT") or getattr(settings, "KAMENG_BILLING_PDF_FONT", "")
    for candidate in ([configured] if configured else []) + list(FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def render_invoice_pdf(invoice) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    font = _font_path()
    if font:
        pdf.add_font("Body", "", font)
        family, clean = "Body", (lambda text: str(text))
    else:
        family, clean = "Helvetica", (lambda text: str(text).encode("latin-1", "replace").decode("latin-1"))
    title = "Credit note" if invoice.kind == "credit_note" else "Invoice"
    money = lambda amount: clean(format_minor(amount, invoice.currency))  # noqa: E731
    pdf.set_font(family, size=18)
    pdf.cell(0, 10, clean(f"{title} {invoice.number}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=10)
    bill_to = invoice.bill_to or {}
    header = [
        ("From", f"Kameng platform ({settings.PLATFORM_DOMAIN})"),
        ("Bill to", f"{bill_to.get('shop', '')} ({bill_to.get('slug', '')}) {bill_to.get('email', '')}"),
        ("Issued", f"{timezone.localtime(invoice.issued_at):%Y-%m-%d}"),
    ]
    if invoice.period_start:
        header.append(("Period", f"{invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d} (exclusive)"))
    if invoice.credits_id:
        header.append(("Corrects", invoice.credits.number))
    for label, value in header:
        pdf.cell(30, 6, clean(label))
        pdf.cell(0, 6, clean(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(family, size=10)
    pdf.cell(140, 7, "Description", border="B")
    pdf.cell(0, 7, "Amount", border="B", align="R", new_x="LMARGIN", new_y="NEXT")
    for line in invoice.lines.all():
        pdf.cell(140, 7, clean(line.description)[:95])
        pdf.cell(0, 7, money(line.amount), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    for label, amount in (("Subtotal", invoice.subtotal), (f"Tax ({invoice.tax_bp / 100:g} %)", invoice.tax),
                          ("Total", invoice.total)):
        pdf.cell(140, 7, clean(label), align="R")
        pdf.cell(0, 7, money(amount), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_title(f"{title} {invoice.number}")
    pdf.set_creation_date(invoice.issued_at)
    return bytes(pdf.output())
