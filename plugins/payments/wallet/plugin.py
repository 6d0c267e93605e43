"""Pay from the wallet balance: an instant provider for signed-in customers.

The money moves in the ledger (``customers.services``), whose database constraints
refuse a negative balance. Top-ups are orders of kind ``wallet_topup`` paid through
another provider (``can_top_up_wallet = False`` here: a wallet cannot fill itself)."""
from __future__ import annotations

from django.db import transaction

from plugins.base import PluginKind
from plugins.payment import GatewayEvent, PaymentAction, PaymentError, PaymentPlugin, RefundOutcome, StatusOutcome

LOW_BALANCE = "Your wallet balance is too low for this order. Top up your wallet or choose another payment method."


class WalletPaymentPlugin(PaymentPlugin):
    slug = "wallet"
    name = "Wallet balance"
    public_name = "Wallet balance"
    kind = PluginKind.PAYMENT
    version = "1.0"
    description = "Signed-in customers pay instantly from their wallet; refunds go back to the wallet."
    can_top_up_wallet = False
    multiple_accounts = False

    def is_allowed(self, order) -> bool:
        from platform_core.orders.models import Order

        return order.customer_id is not None and order.kind == Order.Kind.PURCHASE and order.total > 0

    def start(self, order, payment, *, return_url: str, notify_url: str) -> PaymentAction:
        if not self.is_allowed(order):
            raise PaymentError("Sign in to pay from your wallet.")
        return PaymentAction(kind="instant", message="Paid from your wallet balance.")

    def _event(self, payment, kind: str) -> GatewayEvent:
        return GatewayEvent(event_id=f"wallet:{payment.pk}" + ("" if kind == "payment.succeeded" else f":{kind}"),
                            kind=kind, payment_reference=str(payment.pk), external_id=f"wallet:{payment.pk}",
                            amount=payment.amount, currency=payment.currency, raw={"source": "wallet"})

    def execute(self, payment) -> GatewayEvent:
        from platform_core.customers.services import InsufficientBalance, wallet_debit
        from platform_core.payments.services import record_event

        order = payment.order
        if order.customer_id is None:
            raise PaymentError("Sign in to pay from your wallet.")
        event = self._event(payment, "payment.succeeded")
        try:
            # the debit and the paid order commit together, or neither does; the caller's
            # record_event of the returned event is then a harmless duplicate
            with transaction.atomic():
                wallet_debit(customer=order.customer, amount=payment.amount, kind="payment",
                             reference=f"payment:{payment.pk}", order=order)
                record_event(provider=self.slug, event=event)
        except InsufficientBalance:
            record_event(provider=self.slug, event=self._event(payment, "payment.failed"))
            raise PaymentError(LOW_BALANCE) from None
        return event

    def refund(self, payment, amount: int) -> RefundOutcome:
        from platform_core.customers.services import wallet_credit

        customer = payment.order.customer
        if customer is None:
            return RefundOutcome(succeeded=False, message="This payment has no wallet to refund to.")
        # the core created this refund's row already and holds the payment lock: the count
        # numbers refunds of this payment 1, 2, … and the ledger refuses a second credit
        number = payment.refunds.count()
        reference = f"refund:{payment.pk}:{number}"
        wallet_credit(customer=customer, amount=amount, kind="refund", reference=reference, order=payment.order)
        return RefundOutcome(succeeded=True, external_id=f"wallet-{reference}")

    def fetch_status(self, payment) -> StatusOutcome:
        from platform_core.customers.models import WalletEntry

        entry = WalletEntry.objects.filter(kind="payment", reference=f"payment:{payment.pk}").first()
        if entry is None:  # polled minutes later: the debit never happened
            return StatusOutcome(status="failed", external_id=f"wallet:{payment.pk}")
        return StatusOutcome(status="succeeded", external_id=f"wallet:{payment.pk}", amount=-entry.amount,
                             currency=payment.currency)
