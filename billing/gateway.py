"""The platform's own payment provider for collecting invoices.

It is a ``PaymentPlugin`` like any shop payment plugin (same ``start`` / ``execute`` /
``handle_webhook`` / ``fetch_status``), bound to no shop: its credentials come from
platform settings instead of a shop's encrypted plugin config. The invoice stands in
for the order (``number``) and a ``CollectionAttempt`` for the payment (``pk``,
``amount``, ``currency``). A production adapter (Stripe-style, with saved cards)
subclasses the matching provider the same way and charges in ``execute()``.
"""
from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from plugins.payment import PaymentError
from plugins.payments.sandbox.plugin import SandboxPaymentPlugin, default_gateway_url, sandbox_allowed


class SandboxBillingGateway(SandboxPaymentPlugin):
    slug = "platform-sandbox"
    name = "Sandbox gateway (platform billing)"

    def __init__(self):
        super().__init__(shop=None, config=None)

    @property
    def gateway_url(self) -> str:
        return default_gateway_url()

    def _api_key(self) -> str:
        key = settings.KAMENG_BILLING_SANDBOX_KEY
        if not key or not sandbox_allowed():
            raise PaymentError("Online payment of invoices is not set up on this platform yet.")
        return key


def billing_gateway():
    """The configured platform payment provider (``KAMENG_BILLING_PROVIDER``)."""
    return import_string(settings.KAMENG_BILLING_PROVIDER)()
