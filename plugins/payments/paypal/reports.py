"""PayPal's record of a day for reconciliation (对账): Transaction Search,
``GET /v1/reporting/transactions?start_date=…&end_date=…&fields=all&page_size=500&page=N``
(the app needs the *Transaction Search* permission).

Each ``transaction_details[].transaction_info`` names its ``transaction_id`` (a capture's
or refund's id), ``transaction_event_code`` (``T00xx`` money received, ``T1107`` a refund
of a payment), ``transaction_status`` (S done, P pending, V reversed, D denied),
``transaction_amount`` (refunds negative), ``custom_field`` (our ``custom_id``: the
Kameng payment id) and, for a refund, ``paypal_reference_id`` (the capture refunded).
Transactions appear up to three hours late; ``last_refreshed_datetime`` says how far the
data reach, and a day it does not cover yet is refused rather than read in part."""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from plugins.payment import PaymentError, SettlementLine
from plugins.payments.gateway import from_decimal_string

PAGE_SIZE = 500  # PayPal's largest page
MAX_PAGES = 200
REFUND_CODES = frozenset({"T1107"})
_ID_RE = re.compile(r"^[A-Z0-9]{5,40}$")
_REFERENCE_RE = re.compile(r"^[0-9]{1,18}$")


def unreadable(detail: str) -> PaymentError:
    return PaymentError(f"PayPal's transactions for the day could not be read ({detail}); the reconciliation was not "
                        "made. It is tried again on the next run.", retryable=True)


def day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=dt_timezone.utc)
    return start, start + timedelta(days=1)


def params(day: date, page: int) -> dict[str, str]:
    start, end = day_window(day)
    return {"start_date": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end_date": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fields": "all", "page_size": str(PAGE_SIZE), "page": str(page)}


def _when(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def transactions(call: Callable[[dict], dict], day: date) -> list[dict]:
    """Every ``transaction_info`` of the day, all pages; refused while PayPal's data do not
    reach the end of the day yet."""
    _, end = day_window(day)
    found: list[dict] = []
    page, total_pages = 1, None
    while True:
        body = call(params(day, page))
        details, pages = body.get("transaction_details"), body.get("total_pages")
        if not isinstance(details, list) or not isinstance(pages, int) or isinstance(pages, bool) or pages < 0:
            raise unreadable("the answer is not a transaction list")
        if total_pages is None:
            total_pages = pages
            refreshed = _when(body.get("last_refreshed_datetime"))
            if refreshed is None:
                raise unreadable("the answer does not say how recent its data are")
            if refreshed < end:
                raise PaymentError(f"PayPal's records reach {refreshed:%Y-%m-%d %H:%M} UTC only; the day is "
                                   "reconciled once they cover all of it (PayPal lists transactions up to three "
                                   "hours late).", retryable=True)
        elif pages != total_pages:
            raise unreadable("the number of pages changed while reading")
        for item in details:
            info = item.get("transaction_info") if isinstance(item, dict) else None
            if not isinstance(info, dict):
                raise unreadable("a transaction without transaction_info")
            found.append(info)
        if page >= total_pages:
            return found
        if page >= MAX_PAGES:
            raise unreadable(f"more than {MAX_PAGES * PAGE_SIZE} transactions in one day")
        page += 1


def _amount(info: dict, txn_id: str, exponents) -> tuple[int, str, bool]:
    amount = info.get("transaction_amount")
    currency = amount.get("currency_code") if isinstance(amount, dict) else None
    value = amount.get("value") if isinstance(amount, dict) else None
    if not (isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency) and isinstance(value, str)):
        raise unreadable(f"{txn_id} has no valid transaction_amount")
    negative = value.startswith("-")
    try:
        minor = from_decimal_string(value.removeprefix("-"), currency, exponents)
    except ValueError:
        raise unreadable(f"{txn_id}: {value[:20]!r} is not an amount in {currency}") from None
    if minor <= 0:
        raise unreadable(f"{txn_id} has a zero amount")
    return minor, currency, negative


def settlement_lines(infos: list[dict], *, capture: Callable[[str], dict], exponents) -> list[SettlementLine]:
    """Lines for Kameng's captures and refunds. ``capture(id)`` returns the capture (for
    the order it belongs to, our payment's external id, and its ``custom_id``)."""
    lines: list[SettlementLine] = []
    for info in infos:
        txn_id, code, status = info.get("transaction_id"), info.get("transaction_event_code"), \
            info.get("transaction_status")
        if not isinstance(txn_id, str) or not _ID_RE.match(txn_id) or not isinstance(code, str) \
                or not re.fullmatch(r"T[0-9]{4}", code) or status not in ("S", "P", "V", "D"):
            raise unreadable("a transaction without a valid id, event code or status")
        is_payment, is_refund = code.startswith("T00"), code in REFUND_CODES
        if not (is_payment or is_refund):
            continue  # fees, transfers, holds, chargebacks: not a sale or its refund
        amount, currency, negative = _amount(info, txn_id, exponents)
        if negative != is_refund:
            raise unreadable(f"{txn_id}: a {'refund' if is_refund else 'payment'} with the wrong sign")
        # a payment counts once it went through (V: it did, and was refunded later); a refund once done
        if status not in (("S", "V") if is_payment else ("S",)):
            continue
        capture_id = txn_id if is_payment else info.get("paypal_reference_id")
        if not isinstance(capture_id, str) or not _ID_RE.match(capture_id):
            raise unreadable(f"{txn_id}: a refund that does not name its capture")
        reference = info.get("custom_field") if _REFERENCE_RE.match(str(info.get("custom_field") or "")) else ""
        found = capture(capture_id)
        reference = reference or (found.get("custom_id") if _REFERENCE_RE.match(str(found.get("custom_id") or ""))
                                  else "")
        if not reference:
            continue  # a sale of another integration on the same PayPal account
        related = found.get("supplementary_data", {}).get("related_ids", {}) \
            if isinstance(found.get("supplementary_data"), dict) else {}
        order_id = related.get("order_id") if isinstance(related, dict) else None
        if not isinstance(order_id, str) or not _ID_RE.match(order_id):
            raise unreadable(f"capture {capture_id} does not name its order")
        if is_payment:
            lines.append(SettlementLine(kind="payment", external_id=order_id, payment_external_id=order_id,
                                        reference=reference, amount=amount, currency=currency))
        else:
            lines.append(SettlementLine(kind="refund", external_id=txn_id, payment_external_id=order_id,
                                        reference=reference, amount=amount, currency=currency))
    return lines
