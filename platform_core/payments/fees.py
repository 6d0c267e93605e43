"""Payment fees per method: the one place the arithmetic lives (docs/decisions/0025).

fee = fixed + round_half_up(order total × basis points / 10 000), in integer minor
units. The percentage is taken of the order total (not grossed up over the fee), and an
amount of zero or less needs no payment, so it carries no fee.
"""
from __future__ import annotations

from dataclasses import dataclass

from platform_core.money import bp_of


def fee_for_amount(amount: int, *, fixed: int, basis_points: int) -> int:
    """The fee on ``amount`` minor units; refuses anything that is not a whole number."""
    for name, value in (("amount", amount), ("fixed", fixed), ("basis_points", basis_points)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer")
    if fixed < 0 or basis_points < 0:
        raise ValueError("fees are never negative")
    if amount <= 0:
        return 0
    return fixed + bp_of(amount, basis_points)


@dataclass(frozen=True)
class FeeQuote:
    """What paying ``order_total`` with ``provider`` costs: the method's fee, who bears it,
    and the amount the gateway is asked for."""

    provider: str
    order_total: int
    fee: int
    passed_to_buyer: bool

    @property
    def buyer_fee(self) -> int:
        return self.fee if self.passed_to_buyer else 0

    @property
    def amount(self) -> int:
        return self.order_total + self.buyer_fee
