"""Alipay's trade bill (业务账单) for reconciliation (对账).

``alipay.data.dataservice.bill.downloadurl.query`` (``bill_type=trade``, ``bill_date`` a
China-time day) answers, signed, a download link valid for 30 seconds; the link gives a
zip of two GBK CSV files, ``<PID>_<yyyymmdd>_业务明细.csv`` (one row per trade and per
refund) and ``…_业务明细(汇总).csv`` (totals). The detail file::

    #支付宝业务明细查询
    #账号：[20881234567890120156]
    #起始日期：[2026年11月21日 00:00:00]   终止日期：[2026年11月22日 00:00:00]
    #-----------------------------------------业务明细列表----------------------------------------
    支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,…,订单金额（元）,商家实收（元）,…,退款批次号/请求号,服务费（元）,分润（元）,备注
    2026112122001…\t,20261121000123P45\t,交易,Order …,2026-11-21 10:00:00,2026-11-21 10:00:30,…,20.00,20.00,…
    2026112122001…\t,20261121000123P45\t,退款,Order …,…,-5.00,-5.00,…,RF0T500\t,…
    #-----------------------------------------业务明细列表结束------------------------------------
    #交易合计：1笔，退款合计：1笔
    #导出时间：[2026年11月22日 09:12:34]

Ids carry a tab so spreadsheets keep their digits; refunds are negative. A bill that is
cut short, has no detail file, rows of a kind we do not know or counts that disagree
with its own totals line is refused as a whole.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from plugins.payment import PaymentError, SettlementLine
from plugins.payments import china

METHOD = "alipay.data.dataservice.bill.downloadurl.query"
MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_CSV_BYTES = 200 * 1024 * 1024  # a day of a big merchant; more is not a bill
HEADER_FIRST = "支付宝交易号"
COLUMNS = {"trade_no": "支付宝交易号", "out_trade_no": "商户订单号", "kind": "业务类型",
           "amount": "订单金额（元）", "request_no": "退款批次号/请求号"}
PAYMENT_KIND, REFUND_KIND = "交易", "退款"
_END_MARK = "业务明细列表结束"
_TOTALS_RE = re.compile(r"交易合计[：:]\s*(\d+)\s*笔[，,]\s*退款合计[：:]\s*(\d+)\s*笔")
_ID_RE = re.compile(r"^[0-9A-Za-z_\-]{1,64}$")


def ready_at(day: date) -> datetime:
    """From when a missing bill means a day without trades: Alipay publishes the bill by
    about 9 a.m. China time the next day (an hour of margin here)."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=china.BEIJING) + timedelta(hours=10)


def unreadable(detail: str) -> PaymentError:
    return PaymentError(f"Alipay's bill could not be read ({detail}); the reconciliation was not made. It is tried "
                        "again on the next run.", retryable=True)


def _member_name(info: zipfile.ZipInfo) -> str:
    """Alipay names the files in GBK without the zip's UTF-8 flag; Python read them as cp437."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def detail_text(archive: bytes) -> str:
    """The detail CSV of the bill zip, decoded."""
    if len(archive) > MAX_ZIP_BYTES:
        raise unreadable("the file is larger than any daily bill")
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            details = [info for info in bundle.infolist() if _member_name(info).endswith(".csv")
                       and "业务明细" in _member_name(info) and "汇总" not in _member_name(info)]
            if len(details) != 1:
                raise unreadable("the zip holds no single detail file (业务明细)")
            if details[0].file_size > MAX_CSV_BYTES:
                raise unreadable("the detail file is larger than any daily bill")
            raw = bundle.read(details[0])  # checks the member's CRC
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError):
        raise unreadable("the download is not an intact zip") from None
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        raise unreadable("the detail file is not GBK text") from None


def _cell(value: str) -> str:
    return value.strip().strip("\t").strip()


def _fen(text: str, where: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise unreadable(f"{where}: {text!r} is not an amount") from None
    negative = value < 0
    try:
        amount = china.fen(str(abs(value)))
    except ValueError:
        raise unreadable(f"{where}: {text!r} is not an amount in yuan") from None
    return -amount if negative else amount


def settlement_lines(text: str) -> list[SettlementLine]:
    """Lines for the Kameng trades and refunds of a detail file (out_trade_no made by
    Kameng: ``<order number>P<payment id>``); other sales on the same account are left out."""
    lines = [line for line in text.splitlines() if line.strip()]
    header_at = next((i for i, line in enumerate(lines) if _cell(line.split(",")[0]) == HEADER_FIRST), None)
    if header_at is None:
        raise unreadable("no header row")
    header = [_cell(name) for name in next(csv.reader([lines[header_at]]))]
    missing = [name for name in COLUMNS.values() if name not in header]
    if missing:
        raise unreadable(f"the column {missing[0]} is missing")
    index = {key: header.index(name) for key, name in COLUMNS.items()}
    rows, footer = [], []
    for line in lines[header_at + 1:]:
        (footer if line.startswith("#") or footer else rows).append(line)
    if not any(_END_MARK in line for line in footer):
        raise unreadable("the file is cut short: no end-of-list line")
    counted = {PAYMENT_KIND: 0, REFUND_KIND: 0}
    result: list[SettlementLine] = []
    for number, row in enumerate(csv.reader(rows), start=1):
        where = f"row {number}"
        if len(row) != len(header):
            raise unreadable(f"{where} has {len(row)} columns, the header {len(header)}")
        trade_no, out_trade_no, kind = (_cell(row[index[key]]) for key in ("trade_no", "out_trade_no", "kind"))
        if kind not in counted:
            raise unreadable(f"{where} is of a kind Kameng does not know ({kind[:20]})")
        counted[kind] += 1
        if not _ID_RE.match(trade_no) or not _ID_RE.match(out_trade_no):
            raise unreadable(f"{where} lacks the trade numbers")
        amount = _fen(_cell(row[index["amount"]]), where)
        reference = china.payment_reference(out_trade_no)
        if not reference:
            continue  # a sale of another integration on the same Alipay account
        if kind == PAYMENT_KIND:
            if amount <= 0:
                raise unreadable(f"{where}: a trade of {amount} fen")
            result.append(SettlementLine(kind="payment", external_id=out_trade_no, payment_external_id=out_trade_no,
                                         reference=reference, amount=amount, currency=china.CNY))
        else:
            request_no = _cell(row[index["request_no"]]) or out_trade_no  # a refund without one used the trade's
            if amount >= 0 or not _ID_RE.match(request_no):
                raise unreadable(f"{where}: a refund must be negative and name its request number")
            result.append(SettlementLine(kind="refund", external_id=request_no, payment_external_id=out_trade_no,
                                         reference=reference, amount=-amount, currency=china.CNY))
    totals = next((_TOTALS_RE.search(line) for line in footer if _TOTALS_RE.search(line)), None)
    if totals and (int(totals.group(1)), int(totals.group(2))) != (counted[PAYMENT_KIND], counted[REFUND_KIND]):
        raise unreadable(f"the bill lists {counted[PAYMENT_KIND]} trades and {counted[REFUND_KIND]} refunds but "
                         f"its totals line says {totals.group(1)} and {totals.group(2)}")
    return result
