"""Stripe's record of a day for reconciliation (对账): the balance transactions created in
that UTC day (``GET /v1/balance_transactions``), each with its source (the charge or the
refund) and the source's PaymentIntent expanded, turned into settlement lines.

Amounts come from the source, not the balance transaction: a balance transaction is in
the account's settlement currency after conversion and net of nothing but sign, while
Kameng recorded what the buyer was charged (the charge's or refund's own amount and
currency). A report that cannot be read whole is refused (``PaymentError``): a
reconciliation from half a report would flag payments that are fine."""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from plugins.payment import PaymentError, SettlementLine
from plugins.payments.gateway import from_gateway_minor

PAGE_SIZE = 100  # Stripe's largest page
MAX_PAGES = 500  # 50,000 money movements in a day: beyond that, refuse rather than stop halfway
PAYMENT_TYPES = frozenset({"charge", "payment"})  # "payment": non-card methods on newer accounts
REFUND_TYPES = frozenset({"refund", "payment_refund"})
_TXN_ID_RE = re.compile(r"^txn_[A-Za-z0-9_]{1,200}$")
_REFERENCE_RE = re.compile(r"^[0-9]{1,18}$")


def unreadable(detail: str) -> PaymentError:
    return PaymentError(f"Stripe's balance transactions for the day could not be read ({detail}); "
                        "the reconciliation was not made. It is tried again on the next run.", retryable=True)


def day_range(day: date) -> tuple[int, int]:
    """Unix seconds [start, end) of the UTC day."""
    start = datetime.combine(day, time.min, tzinfo=dt_timezone.utc)
    return int(start.timestamp()), int((start + timedelta(days=1)).timestamp())


def list_params(day: date, starting_after: str = "") -> list[tuple[str, str]]:
    start, end = day_range(day)
    params = [("created[gte]", str(start)), ("created[lt]", str(end)), ("limit", str(PAGE_SIZE)),
              ("expand[]", "data.source"), ("expand[]", "data.source.payment_intent")]
    if starting_after:
        params.append(("starting_after", starting_after))
    return params


def balance_transactions(call: Callable[[dict | list], dict], day: date) -> list[dict]:
    """Every balance transaction of the day, following ``has_more`` / ``starting_after``."""
    found: list[dict] = []
    seen: set[str] = set()
    starting_after = ""
    for _ in range(MAX_PAGES):
        page = call(list_params(day, starting_after))
        data, has_more = page.get("data"), page.get("has_more")
        if page.get("object") != "list" or not isinstance(data, list) or not isinstance(has_more, bool):
            raise unreadable("the answer is not a list")
        for txn in data:
            txn_id = txn.get("id") if isinstance(txn, dict) else None
            if not isinstance(txn_id, str) or not _TXN_ID_RE.match(txn_id):
                raise unreadable("a transaction without a valid id")
            if txn_id in seen:
                raise unreadable(f"transaction {txn_id} listed twice")
            seen.add(txn_id)
            found.append(txn)
        if not has_more:
            return found
        if not data:
            raise unreadable("more pages announced after an empty one")
        starting_after = data[-1]["id"]
    raise unreadable(f"more than {MAX_PAGES * PAGE_SIZE} transactions in one day")


def _object(value, prefix: str, what: str, txn_id: str) -> dict:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) \
            or not value["id"].startswith(prefix):
        raise unreadable(f"{txn_id} has no expanded {what}")
    return value


def _amount_and_currency(obj: dict, txn_id: str, exponents) -> tuple[int, str]:
    currency, amount = obj.get("currency"), obj.get("amount")
    if not (isinstance(currency, str) and re.fullmatch(r"[a-z]{3}", currency)):
        raise unreadable(f"{txn_id} has no valid currency")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise unreadable(f"{txn_id} has no valid amount")
    try:
        return from_gateway_minor(amount, currency.upper(), exponents), currency.upper()
    except ValueError:
        raise unreadable(f"{txn_id} has an amount Kameng cannot hold in {currency.upper()}") from None


def _reference(*objects: dict) -> str:
    for obj in objects:
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        value = metadata.get("kameng_payment")
        if isinstance(value, str) and _REFERENCE_RE.match(value):
            return value
    return ""


def settlement_lines(transactions: list[dict], *, session_for: Callable[[str], dict | None],
                     exponents) -> list[SettlementLine]:
    """Lines for Kameng's payments and refunds among ``transactions``. ``session_for(pi)``
    returns the Checkout Session that created a PaymentIntent (our payment's external id)
    or None. Movements of other integrations on the same Stripe account (no Kameng
    reference on the PaymentIntent or charge, no Checkout Session) and other types
    (fees, payouts, transfers) are left out."""
    lines: list[SettlementLine] = []
    for txn in transactions:
        txn_id, kind = txn["id"], txn.get("type")
        if kind in PAYMENT_TYPES:
            charge = _object(txn.get("source"), ("ch_", "py_"), "charge", txn_id)
            amount, currency = _amount_and_currency(charge, txn_id, exponents)
        elif kind in REFUND_TYPES:
            charge = _object(txn.get("source"), ("re_", "pyr_"), "refund", txn_id)
            amount, currency = _amount_and_currency(charge, txn_id, exponents)
        else:
            continue
        intent = charge.get("payment_intent")
        if intent is None:
            continue  # a charge made without a PaymentIntent: never one of Kameng's
        intent = _object(intent, "pi_", "PaymentIntent", txn_id)
        reference = _reference(intent, charge)
        session = session_for(intent["id"])
        if session is not None:
            reference = reference or _reference(session) or (
                session.get("client_reference_id") if _REFERENCE_RE.match(
                    str(session.get("client_reference_id") or "")) else "")
        if not reference:
            continue  # not Kameng's
        payment_id = session["id"] if session is not None else intent["id"]
        if kind in PAYMENT_TYPES:
            lines.append(SettlementLine(kind="payment", external_id=payment_id, payment_external_id=payment_id,
                                        reference=reference, amount=amount, currency=currency))
        else:
            if charge.get("status") not in ("succeeded", "pending"):
                continue  # failed or canceled: the money came back, nothing was refunded
            lines.append(SettlementLine(kind="refund", external_id=charge["id"], payment_external_id=payment_id,
                                        reference=reference, amount=amount, currency=currency))
    return lines
