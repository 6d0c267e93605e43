"""Chinese on invoice PDFs: an installed CJK font is found without configuration and the
shop name's characters are embedded as text (glyphs in an embedded font, mapped back
to the characters); without a CJK font the PDF still renders and the log says why
the name is blank and how to fix it."""
from __future__ import annotations

import logging
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from billing import invoicing, pdf
from tests.billing.test_invoices import start_paid_subscription

NAME = "阿尔法卡店"


def at(*args):
    return datetime(*args, tzinfo=ZoneInfo("Asia/Shanghai"))


def text_characters(document: bytes) -> set[str]:
    """Every character the PDF's ToUnicode maps name: what a reader extracts or copies."""
    chars = set()
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", document, re.S):
        for code in re.findall(rb"<[0-9A-Fa-f]+>\s*<([0-9A-Fa-f]{4,8})>", block):
            chars.add(bytes.fromhex(code.decode()).decode("utf-16-be"))
    return chars


def embedded_fonts(document: bytes) -> set[str]:
    """Names of the fonts whose outlines are embedded (FontFile2 descriptors)."""
    names = set()
    for descriptor in re.findall(rb"<<(.*?)>>", document, re.S):
        if b"/FontFile2" in descriptor and (name := re.search(rb"/FontName\s*/[A-Z]{6}\+(\S+)", descriptor)):
            names.add(name.group(1).decode())
    return names


@pytest.fixture
def chinese_invoice(alpha, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    alpha.name = NAME
    alpha.save()
    start_paid_subscription(alpha, plan="pro", trial_end=at(2026, 1, 1, 0, 0))
    invoice = invoicing.invoice_issue_monthly(shop=alpha, year=2026, month=1, now=at(2026, 2, 1, 9, 0))
    assert invoice.bill_to["shop"] == NAME
    pdf.discover_cjk_font.cache_clear()
    yield invoice
    pdf.discover_cjk_font.cache_clear()


def test_an_installed_cjk_font_is_found_and_the_chinese_name_is_embedded(chinese_invoice, settings, caplog):
    settings.KAMENG_BILLING_PDF_CJK_FONT = "auto"
    found = pdf.discover_cjk_font()
    assert found, ("no CJK font on this machine: install the Debian package fonts-wqy-microhei "
                   "(.ci/run and the Docker image do)")
    with caplog.at_level(logging.WARNING, logger="billing.pdf"):
        document = pdf.render_invoice_pdf(chinese_invoice)
    assert document.startswith(b"%PDF")
    assert set(NAME) <= text_characters(document)               # the name is text, not boxes
    assert set("INV-2026-000001 alpha") <= text_characters(document)  # Latin text still set
    fonts = embedded_fonts(document)
    assert len(fonts) >= 1 and any("DejaVu" not in name for name in fonts), fonts
    assert not [r for r in caplog.records if "CJK" in r.getMessage()]
    # the stored PDF (what the owner downloads) is the same rendering
    key = invoicing.invoice_store_pdf(invoice=chinese_invoice)
    from django.core.files.storage import storages

    with storages["default"].open(key) as stored:
        assert set(NAME) <= text_characters(stored.read())


def test_a_configured_cjk_font_path_is_used(chinese_invoice, settings):
    found = pdf.discover_cjk_font()
    assert found, "no CJK font on this machine: install fonts-wqy-microhei"
    settings.KAMENG_BILLING_PDF_CJK_FONT = found
    assert set(NAME) <= text_characters(pdf.render_invoice_pdf(chinese_invoice))


def test_without_a_cjk_font_the_pdf_renders_and_the_log_says_why(chinese_invoice, settings, caplog):
    settings.KAMENG_BILLING_PDF_CJK_FONT = "off"
    with caplog.at_level(logging.WARNING, logger="billing.pdf"):
        document = pdf.render_invoice_pdf(chinese_invoice)
    assert document.startswith(b"%PDF")
    assert not set(NAME) & text_characters(document)
    warning, = [r.getMessage() for r in caplog.records if r.name == "billing.pdf"]
    assert "INV-2026-000001" in warning and "fonts-wqy-microhei" in warning
    assert "KAMENG_BILLING_PDF_CJK_FONT" in warning


def test_a_latin_name_needs_no_cjk_font_and_logs_nothing(alpha, settings, caplog, tmp_path):
    settings.KAMENG_BILLING_PDF_CJK_FONT = "off"
    start_paid_subscription(alpha, plan="pro", trial_end=at(2026, 1, 1, 0, 0))
    invoice = invoicing.invoice_issue_monthly(shop=alpha, year=2026, month=1, now=at(2026, 2, 1, 9, 0))
    with caplog.at_level(logging.WARNING, logger="billing.pdf"):
        assert pdf.render_invoice_pdf(invoice).startswith(b"%PDF")
    assert not [r for r in caplog.records if r.name == "billing.pdf"]
