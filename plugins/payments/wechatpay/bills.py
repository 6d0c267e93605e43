"""WeChat Pay's trade bill (交易账单) for reconciliation (对账).

``GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL`` (a China-time day) answers,
signed, ``{"hash_type": "SHA1", "hash_value": …, "download_url": …}``; the download is a
signed GET whose answer is *not* signed: its SHA1 must equal ``hash_value``. The file is
UTF-8 CSV, every value behind a backtick so spreadsheets keep long numbers::

    交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注
    `2026-11-21 10:00:30,`wx…,`1900000109,`0,`,`4200…,`20261121000123P45,`o…,`NATIVE,`SUCCESS,`OTHERS,`CNY,`20.00,`0.00,`0,`0,`0.00,`0.00,`,`,`Order …,`,`0.12000,`0.60%,`20.00,`0.00,`
    `2026-11-21 11:00:00,…,`REFUND,…,`50000…,`20261121000123P45R0T500,`5.00,`0.00,`ORIGINAL,`SUCCESS,…,`20.00,`5.00,`
    总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
    `2,`20.00,`5.00,`0.00,`0.12000,`20.00,`5.00

A payment is a SUCCESS row (its 订单金额); a refund a REFUND row (its 申请退款金额, named
by 商户退款单号); REVOKED rows (a payment cancelled, nothing kept) are left out. A file
whose hash, header, rows or row count do not hold together is refused as a whole.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import re
from datetime import date, datetime, timedelta

from plugins.payment import PaymentError, SettlementLine
from plugins.payments import china

MAX_BILL_BYTES = 200 * 1024 * 1024
COLUMNS = {"transaction_id": "微信订单号", "out_trade_no": "商户订单号", "state": "交易状态", "currency": "货币种类",
           "refund_id": "微信退款单号", "out_refund_no": "商户退款单号", "refund_status": "退款状态",
           "order_amount": "订单金额", "refund_amount": "申请退款金额"}
TOTALS_FIRST = "总交易单数"
_ID_RE = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
_HASH_RE = re.compile(r"^[0-9a-fA-F]{40}$")


def ready_at(day: date) -> datetime:
    """From when a missing bill means a day without trades: WeChat Pay publishes the bill
    by about 10 a.m. China time the next day."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=china.BEIJING) + timedelta(hours=10)


def unreadable(detail: str) -> PaymentError:
    return PaymentError(f"WeChat Pay's bill could not be read ({detail}); the reconciliation was not made. It is tried "
                        "again on the next run.", retryable=True)


def check_hash(content: bytes, hash_type, hash_value) -> None:
    if hash_type != "SHA1" or not isinstance(hash_value, str) or not _HASH_RE.match(hash_value):
        raise unreadable("the answer names no SHA1 hash of the file")
    if not hmac.compare_digest(hashlib.sha1(content).hexdigest(), hash_value.lower()):  # noqa: S324 - WeChat's choice
        raise unreadable("the downloaded file does not match its SHA1 hash")


def _cell(value: str) -> str:
    return value.strip().removeprefix("`").strip()


def _fen(text: str, where: str) -> int:
    try:
        return china.fen(text)
    except ValueError:
        raise unreadable(f"{where}: {text[:20]!r} is not an amount in yuan") from None


def settlement_lines(content: bytes) -> list[SettlementLine]:
    """Lines for the Kameng payments and refunds of the bill (out_trade_no made by Kameng);
    other sales on the same merchant account are left out."""
    if len(content) > MAX_BILL_BYTES:
        raise unreadable("the file is larger than any daily bill")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise unreadable("the file is not UTF-8 text") from None
    rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    if not rows or _cell(rows[0][0]) != "交易时间":
        raise unreadable("no header row")
    header = [_cell(name) for name in rows[0]]
    missing = [name for name in COLUMNS.values() if name not in header]
    if missing:
        raise unreadable(f"the column {missing[0]} is missing")
    index = {key: header.index(name) for key, name in COLUMNS.items()}
    totals_at = next((i for i, row in enumerate(rows) if _cell(row[0]) == TOTALS_FIRST), None)
    if totals_at is None or totals_at + 1 >= len(rows):
        raise unreadable("the file is cut short: no totals")
    declared = _cell(rows[totals_at + 1][0])
    details = rows[1:totals_at]
    if not declared.isdigit() or int(declared) != len(details):
        raise unreadable(f"the bill lists {len(details)} rows but its totals say {declared[:12]}")
    result: list[SettlementLine] = []
    for number, row in enumerate(details, start=1):
        where = f"row {number}"
        if len(row) != len(header):
            raise unreadable(f"{where} has {len(row)} columns, the header {len(header)}")
        cell = {key: _cell(row[at]) for key, at in index.items()}
        if cell["state"] not in ("SUCCESS", "REFUND", "REVOKED"):
            raise unreadable(f"{where} is in a state Kameng does not know ({cell['state'][:20]})")
        if not _ID_RE.match(cell["transaction_id"]) or not _ID_RE.match(cell["out_trade_no"]):
            raise unreadable(f"{where} lacks the order numbers")
        if cell["currency"] != china.CNY:
            raise unreadable(f"{where} is in {cell['currency'][:8]}, not CNY")
        reference = china.payment_reference(cell["out_trade_no"])
        if cell["state"] == "REVOKED" or not reference:
            continue  # cancelled before any money stayed, or a sale of another integration
        if cell["state"] == "SUCCESS":
            amount = _fen(cell["order_amount"], where)
            if amount <= 0:
                raise unreadable(f"{where}: a payment of {amount} fen")
            result.append(SettlementLine(kind="payment", external_id=cell["out_trade_no"],
                                         payment_external_id=cell["out_trade_no"], reference=reference,
                                         amount=amount, currency=china.CNY))
            continue
        if cell["refund_status"] not in ("SUCCESS", "PROCESSING"):
            continue  # a refund that failed or was abandoned (CHANGE, ABNORMAL): no money went back
        refund_no = cell["out_refund_no"] or cell["refund_id"]
        amount = _fen(cell["refund_amount"], where)
        if amount <= 0 or not _ID_RE.match(refund_no):
            raise unreadable(f"{where}: a refund needs an amount and a refund number")
        result.append(SettlementLine(kind="refund", external_id=refund_no, payment_external_id=cell["out_trade_no"],
                                     reference=reference, amount=amount, currency=china.CNY))
    return result
