"""The payment-provider interface every payment plugin implements (pretix + saleor style).

Providers speak to their gateway and return normalised results; the core
(``platform_core.payments.services``) persists them under row locks. A provider never
marks an order paid itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plugins.base import Plugin, PluginKind

if TYPE_CHECKING:
    from platform_core.orders.models import Order
    from platform_core.payments.models import Payment


@dataclass
class PaymentAction:
    """What the buyer does next: go to ``url`` (redirect), scan ``qr_text`` (qr),
    nothing (instant: the money already moved, e.g. wallet)."""

    kind: str  # "redirect" | "qr" | "instant"
    url: str = ""
    qr_text: str = ""
    external_id: str = ""
    message: str = ""


@dataclass
class GatewayEvent:
    """A verified event from the gateway, in our words."""

    event_id: str
    kind: str  # "payment.succeeded" | "payment.failed" | "refund.succeeded" | "refund.failed" | "ignored"
    payment_reference: str = ""  # our Payment id we gave the gateway
    external_id: str = ""  # the gateway's payment id
    amount: int = 0
    currency: str = ""
    refund_external_id: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class RefundOutcome:
    succeeded: bool
    external_id: str = ""
    message: str = ""
    pending: bool = False


@dataclass
class StatusOutcome:
    status: str  # "succeeded" | "pending" | "failed"
    external_id: str = ""
    amount: int = 0
    currency: str = ""


@dataclass
class SettlementLine:
    """One money movement the gateway settled, for reconciliation (对账)."""

    kind: str  # "payment" | "refund"
    external_id: str  # the gateway's id of this payment or refund
    payment_external_id: str  # the payment it belongs to (for payments: the same id)
    reference: str  # what we told the gateway (our Payment id), if it keeps it
    amount: int  # minor units
    currency: str


class PaymentError(Exception):
    """Shown to buyers and staff in plain words. ``buyer_message`` is what a buyer sees
    when the staff-facing ``message`` would tell them to fix something they cannot."""

    def __init__(self, message: str, *, retryable: bool = False, buyer_message: str = ""):
        super().__init__(message)
        self.message, self.retryable = message, retryable
        self.buyer_message = buyer_message or message


class PaymentDeclined(PaymentError):
    """The gateway refused this payment or refund for a reason of the buyer's or the
    payment's own (card declined, insufficient funds, nothing left to refund). Trying
    again unchanged will not help."""

    def __init__(self, message: str = "The payment was declined. Try another card or payment method."):
        super().__init__(message, retryable=False)


class PaymentRetryable(PaymentError):
    """The gateway could not be reached or had a passing problem (timeout, 429, 5xx).
    The same request may be sent again later; nothing is known to have moved."""

    def __init__(self, message: str = "The payment service did not answer. Try again in a moment."):
        super().__init__(message, retryable=True)


class PaymentMisconfigured(PaymentError):
    """The shop's settings for this gateway are missing or refused (wrong key, revoked
    credentials, wrong account). Staff must fix the plugin settings; buyers cannot."""

    BUYER_MESSAGE = "This payment method is not available right now. Choose another one or try again later."

    def __init__(self, message: str = "This payment method is not set up correctly; the shop must check its settings."):
        super().__init__(message, retryable=False, buyer_message=self.BUYER_MESSAGE)


class WebhookRejected(Exception):
    """The request is not a genuine event from the gateway (bad signature, stale, malformed)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


class PaymentPlugin(Plugin):
    kind = PluginKind.PAYMENT
    #: shown to buyers on the payment choice
    public_name: str = ""
    #: False for providers that cannot top up a wallet (the wallet itself)
    can_top_up_wallet: bool = True
    #: False for providers with no merchant account to log in to (the wallet)
    multiple_accounts: bool = True

    def accounts_to_try(self) -> list[PaymentPlugin]:
        """This provider bound to each enabled merchant account, in priority order."""
        if not self.multiple_accounts or self.config is None or self.config.pk is None:
            return [self]
        from plugins.accounts import plugin_accounts

        return [self.for_account(account) for account in plugin_accounts(config=self.config) if account.enabled]

    def every_account(self) -> list[PaymentPlugin]:
        """This provider bound to each of its accounts, disabled ones too (they may still
        have payments to refund, poll or reconcile)."""
        if not self.multiple_accounts or self.config is None or self.config.pk is None:
            return [self]
        from plugins.accounts import plugin_accounts

        return [self.for_account(account) for account in plugin_accounts(config=self.config)]

    def bound_to(self, key: str) -> PaymentPlugin | None:
        """This provider bound to the account ``key`` (enabled or not: a disabled account
        takes no new payments but finishes the ones it has), or None if there is none."""
        from plugins.base import MAIN_ACCOUNT

        if not self.multiple_accounts or self.config is None or self.config.pk is None:
            return self if key == MAIN_ACCOUNT else None
        from plugins.accounts import plugin_account

        account = plugin_account(config=self.config, key=key)
        return self.for_account(account) if account is not None else None

    @classmethod
    def takes_fees(cls) -> bool:
        """Whether a per-method payment fee may apply (docs/decisions/0026). Methods that
        move money inside the shop cost it nothing and carry none: by default those that
        cannot top up a wallet, i.e. the wallet balance itself."""
        return cls.can_top_up_wallet

    def is_allowed(self, order: Order) -> bool:
        return order.total > 0

    def start(self, order: Order, payment: Payment, *, return_url: str, notify_url: str) -> PaymentAction:
        raise PaymentError(f"{self.name} cannot start payments.")

    def execute(self, payment: Payment) -> GatewayEvent | None:
        """Instant providers move the money here and report the outcome."""
        return None

    def handle_webhook(self, request) -> list[GatewayEvent]:
        raise WebhookRejected("This provider does not take webhooks.", status=404)

    def webhook_response(self, results: list[str]):
        from django.http import HttpResponse

        return HttpResponse("ok", content_type="text/plain")

    def refund(self, payment: Payment, amount: int) -> RefundOutcome:
        return RefundOutcome(succeeded=False, message="This payment method cannot refund automatically.")

    def fetch_status(self, payment: Payment) -> StatusOutcome:
        return StatusOutcome(status="pending")

    #: True when :meth:`settlement` can list what the gateway settled on a day
    supports_settlement: bool = False

    def settlement(self, day) -> list[SettlementLine]:
        """Payments and refunds the gateway settled on ``day`` (a UTC date)."""
        raise PaymentError(f"{self.name} offers no settlement report.")
