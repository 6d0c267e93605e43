"""Money as integer minor units plus an ISO currency. No float ever touches money."""
from __future__ import annotations

import re
from dataclasses import dataclass

# minor units per currency (ISO 4217 exponent); CNY/USD/EUR have 2, JPY/KRW 0
EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3}
SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "JPY": "¥", "GBP": "£", "HKD": "HK$", "TWD": "NT$"}


def exponent(currency: str) -> int:
    return EXPONENTS.get(currency.upper(), 2)


@dataclass(frozen=True, order=True)
class Money:
    amount: int  # minor units
    currency: str = "CNY"

    def __post_init__(self):
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money amounts are integers in minor units")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, quantity: int) -> Money:
        if not isinstance(quantity, int):
            raise TypeError("multiply Money by an integer quantity")
        return Money(self.amount * quantity, self.currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"cannot combine {self.currency} and {other.currency}")

    def format(self) -> str:
        return format_minor(self.amount, self.currency)


def format_minor(amount: int, currency: str) -> str:
    exp = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(int(amount)), 10 ** exp) if exp else (abs(int(amount)), 0)
    text = f"{whole:,}" + (f".{frac:0{exp}d}" if exp else "")
    return f"{sign}{SYMBOLS.get(currency, currency + ' ')}{text}"


def parse_major(text: str, currency: str) -> int:
    """'12.34' -> 1234 (for CNY). Refuses more decimals than the currency has."""
    from decimal import Decimal, InvalidOperation

    exp = exponent(currency)
    raw = str(text).strip()
    if not re.fullmatch(r"[0-9]{1,15}(\.[0-9]+)?", raw):  # no signs, exponents, NaN or Infinity
        raise ValueError(f"{text!r} is not an amount")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount") from None
    minor = value * (10 ** exp)
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency} amounts have at most {exp} decimals")
    return int(minor)


def bp_of(amount: int, basis_points: int) -> int:
    """``amount`` × bp / 10000, rounded half up, in integers."""
    return (amount * basis_points + 5000) // 10000
