"""What the mainland-China gateways (Alipay, WeChat Pay, EPay) share: the name Kameng
gives a payment at the gateway (``out_trade_no``), Beijing time, yuan amounts."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from plugins.payments.gateway import from_decimal_string, to_decimal_string

CNY = "CNY"
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
BEIJING_FORMAT = "%Y-%m-%d %H:%M:%S"
# <order number>P<payment id>: unique per merchant account even when several shops share
# one, at most 32 characters (WeChat's limit) and only letters and digits (every gateway's
# charset); the payment id comes back out of it when a notification arrives
OUT_TRADE_NO_RE = re.compile(r"^([0-9]{6,24})P([0-9]{1,10})$")


def out_trade_no(order, payment) -> str:
    return f"{order.number}P{payment.pk}"


def payment_reference(value: str) -> str:
    """Our Payment id inside an ``out_trade_no`` we made, or "" for anything else."""
    match = OUT_TRADE_NO_RE.match(value or "")
    return match.group(2) if match else ""


def yuan(amount_fen: int) -> str:
    """2000 -> "20.00": Alipay and EPay take yuan with two decimals."""
    return to_decimal_string(amount_fen, CNY)


def fen(text) -> int:
    """"20.00" -> 2000; ``ValueError`` for anything that is not a plain yuan amount."""
    return from_decimal_string(text, CNY)


def beijing_time(moment: datetime | None = None) -> str:
    """"yyyy-MM-dd HH:mm:ss" in China time, the format Alipay and EPay use."""
    return (moment or datetime.now(timezone.utc)).astimezone(BEIJING).strftime(BEIJING_FORMAT)


def parse_beijing_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text or "", BEIJING_FORMAT).replace(tzinfo=BEIJING)
    except ValueError:
        return None
