"""Reads for payments: fee rules and what each payment method costs for an order."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from django.core.cache import cache

from platform_core.cache import read_on_every_shop_request
from platform_core.db.rows import select_row
from platform_core.payments.fees import FeeQuote, fee_for_amount
from platform_core.payments.models import PaymentMethodFee
from plugins.payment import PaymentPlugin


#: the shop's fee rules, read by every payment start: cached per shop (the cache key
#: function prefixes the schema) and fetched with the other per-request keys
FEE_RULES_CACHE_KEY = "payments:fee-rules:v1"
FEE_RULES_CACHE_SECONDS = 300
read_on_every_shop_request(lambda shop: FEE_RULES_CACHE_KEY)


class FeeRule(NamedTuple):
    """A fee rule as cached: what :func:`fee_quote` reads of a PaymentMethodFee."""

    fixed: int
    basis_points: int
    passed_to_buyer: bool


def payment_fee_rules() -> dict[str, FeeRule]:
    """The current shop's fee rule per payment method (from the cache; every change of a
    rule forgets it, see payment_method_fee_set)."""
    rules = cache.get(FEE_RULES_CACHE_KEY)
    if rules is None:
        rules = {rule.provider: FeeRule(rule.fixed, rule.basis_points, rule.passed_to_buyer)
                 for rule in PaymentMethodFee.objects.order_by("-id")}  # the first row per method wins
        cache.set(FEE_RULES_CACHE_KEY, rules, FEE_RULES_CACHE_SECONDS)
    return rules


def forget_fee_rules() -> None:
    cache.delete(FEE_RULES_CACHE_KEY)


def payment_plugin_class(slug: str) -> type[PaymentPlugin] | None:
    """The installed payment plugin ``slug`` (None: no such payment method)."""
    from plugins.registry import UnknownPlugin, get_plugin_class

    try:
        plugin_class = get_plugin_class(slug)
    except UnknownPlugin:
        return None
    return plugin_class if issubclass(plugin_class, PaymentPlugin) else None


def payment_method_fee_get(provider_slug: str) -> PaymentMethodFee | None:
    """The shop's fee rule for a method (None: no fee)."""
    return select_row(PaymentMethodFee, "provider = %s", [provider_slug], suffix="ORDER BY id LIMIT 1")


def fee_quote(*, provider: type[PaymentPlugin] | PaymentPlugin, order_total: int,
              rules: dict[str, PaymentMethodFee | FeeRule] | None = None) -> FeeQuote:
    """The fee of paying ``order_total`` with ``provider`` under the shop's current rule.
    ``rules`` (slug -> rule) saves a query per method when quoting several."""
    rule = rules.get(provider.slug) if rules is not None else payment_method_fee_get(provider.slug)
    if rule is None or not provider.takes_fees():
        return FeeQuote(provider=provider.slug, order_total=order_total, fee=0, passed_to_buyer=False)
    return FeeQuote(provider=provider.slug, order_total=order_total,
                    fee=fee_for_amount(order_total, fixed=rule.fixed, basis_points=rule.basis_points),
                    passed_to_buyer=rule.passed_to_buyer)


@dataclass(frozen=True)
class MethodQuote:
    """One payment method offered for an order, with what the buyer pays with it."""

    provider: PaymentPlugin
    quote: FeeQuote

    @property
    def slug(self) -> str:
        return self.provider.slug

    @property
    def name(self) -> str:
        return self.provider.public_name or self.provider.name


def payment_method_quotes(*, providers: list[PaymentPlugin], order_total: int) -> list[MethodQuote]:
    """Each of ``providers`` with its fee on ``order_total`` (one query for all rules)."""
    rules = {rule.provider: rule for rule in
             PaymentMethodFee.objects.filter(provider__in=[p.slug for p in providers])}
    return [MethodQuote(provider=p, quote=fee_quote(provider=p, order_total=order_total, rules=rules))
            for p in providers]


def order_payment_methods(order) -> list[MethodQuote]:
    """The methods an order may be paid with now, each with its fee and amount to pay."""
    from platform_core.payments.services import payment_providers

    return payment_method_quotes(providers=payment_providers(order), order_total=order.total)
