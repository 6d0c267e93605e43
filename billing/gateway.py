"""The platform's own payment provider for collecting invoices.

It is a ``PaymentPlugin`` like any shop payment plugin (same ``start`` / ``execute`` /
``handle_webhook`` / ``fetch_status``), bound to no shop: its credentials come from
platform settings instead of a shop's encrypted plugin config. The invoice stands in
for the order (``number``) and a ``CollectionAttempt`` for the payment (``pk``,
``amount``, ``currency``).

``StripeBillingGateway`` (production) subclasses the shop Stripe adapter the same way:
the owner's first payment goes through Stripe Checkout with ``setup_future_usage``
so the card is saved on the shop's Stripe Customer; later invoices and dunning
retries are charged to that card off-session in ``execute()`` (decision 0034).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

from plugins.payment import (
    GatewayEvent,
    PaymentAction,
    PaymentDeclined,
    PaymentError,
    PaymentMisconfigured,
    StatusOutcome,
)
from plugins.payments.gateway import from_gateway_minor, redact, to_gateway_minor
from plugins.payments.sandbox.plugin import SandboxPaymentPlugin, default_gateway_url, sandbox_allowed
from plugins.payments.stripe.plugin import API_VERSION, STRIPE_EXPONENTS, StripePaymentPlugin


class SandboxBillingGateway(SandboxPaymentPlugin):
    slug = "platform-sandbox"
    name = "Sandbox gateway (platform billing)"
    hook_name = "sandbox"  # webhooks arrive at /billing/hooks/<hook_name>/
    saves_cards = False

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


@dataclass(frozen=True)
class SavedCard:
    payment_method_id: str
    brand: str = ""
    last4: str = ""


_ID = {prefix: re.compile(rf"^{prefix}_[A-Za-z0-9_]{{1,200}}$") for prefix in ("cus", "pm", "pi", "cs")}


def _is_id(prefix: str, value) -> bool:
    return isinstance(value, str) and bool(_ID[prefix].match(value))


class StripeBillingGateway(StripePaymentPlugin):
    """The platform's own Stripe account collecting invoices (decision 0034).

    Credentials come from ``KAMENG_BILLING_STRIPE_SECRET_KEY`` /
    ``KAMENG_BILLING_STRIPE_WEBHOOK_SECRET``; the API host from
    ``KAMENG_STRIPE_API_BASE`` like the shop adapter. Writes nothing to the database:
    billing.collection stores what it answers."""

    slug = "platform-stripe"
    name = "Stripe (platform billing)"
    hook_name = "stripe"
    saves_cards = True
    _SETTINGS = {"secret_key": "KAMENG_BILLING_STRIPE_SECRET_KEY",
                 "webhook_secret": "KAMENG_BILLING_STRIPE_WEBHOOK_SECRET"}

    def __init__(self):
        super().__init__(shop=None, config=None)

    def secret(self, field: str) -> str | None:
        setting = self._SETTINGS.get(field)
        return (getattr(settings, setting, "") or None) if setting else None

    def require_secret(self, field_name: str, label: str) -> str:
        value = self.secret(field_name)
        if not value:
            raise PaymentMisconfigured("Online payment of invoices is not set up on this platform yet "
                                       f"({self._SETTINGS.get(field_name, field_name)} is empty).")
        return value

    def _call(self, method: str, path: str, **options) -> dict:
        self.require_secret("secret_key", "Stripe secret key")
        try:
            return super()._call(method, path, **options)
        except PaymentMisconfigured:  # the shop adapter's wording points at a shop's settings
            raise PaymentMisconfigured("Stripe refused the platform's credentials: check "
                                       "KAMENG_BILLING_STRIPE_SECRET_KEY.") from None

    @staticmethod
    def _key(*parts) -> str:
        # the platform domain keeps two installations on one Stripe account (staging and
        # production on test keys) from answering each other's requests
        return "-".join(str(p) for p in ("kameng-billing", settings.PLATFORM_DOMAIN, *parts))

    # --- the shop as a Stripe Customer ----------------------------------------------------
    def create_customer(self, shop) -> str:
        """A Stripe Customer for ``shop``; the key makes a repeat (after a lost answer or a
        lost database write) return the same Customer, never a second one."""
        body = self._call("POST", "/v1/customers", data=[
            ("name", str(shop.name)[:250]),
            ("metadata[kameng_shop]", str(shop.pk)),
            ("metadata[kameng_slug]", shop.slug),
        ], idempotency_key=self._key("customer", shop.pk))
        if not _is_id("cus", body.get("id")):
            raise PaymentError("Stripe sent an unexpected answer. Try again in a moment.", retryable=True)
        return body["id"]

    @staticmethod
    def _customer_of(invoice):
        from billing.models import BillingCustomer

        return BillingCustomer.objects.filter(shop_id=invoice.shop_id, provider=StripeBillingGateway.slug).first()

    # --- pay now: Checkout, saving the card ----------------------------------------------
    def start(self, order, payment, *, return_url: str, notify_url: str) -> PaymentAction:
        """Stripe Checkout for what is due on the invoice (``order``), on the shop's
        Customer, with ``setup_future_usage=off_session``: the card the owner pays with
        is kept for the next invoices."""
        customer = self._customer_of(order)
        if customer is None:
            raise PaymentError("This shop has no Stripe customer yet.")
        currency = payment.currency.upper()
        try:
            amount = to_gateway_minor(payment.amount, currency, STRIPE_EXPONENTS)
        except ValueError:
            raise PaymentError(f"Stripe cannot take this amount in {currency}.") from None
        reference, number = str(payment.pk), str(order.number)
        body = self._call("POST", "/v1/checkout/sessions", data=[
            ("mode", "payment"),
            ("customer", customer.customer_id),
            ("success_url", return_url),
            ("cancel_url", return_url),
            ("client_reference_id", reference),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", currency.lower()),
            ("line_items[0][price_data][unit_amount]", str(amount)),
            ("line_items[0][price_data][product_data][name]", f"Kameng invoice {number}"),
            ("metadata[kameng_payment]", reference),
            ("metadata[kameng_invoice]", number),
            ("payment_intent_data[setup_future_usage]", "off_session"),
            ("payment_intent_data[metadata][kameng_payment]", reference),
            ("payment_intent_data[metadata][kameng_invoice]", number),
        ], idempotency_key=self._key("checkout", number, reference))
        session_id, url = body.get("id"), body.get("url")
        if not (_is_id("cs", session_id) and isinstance(url, str) and url.startswith(("https://", "http://"))
                and body.get("amount_total") == amount and body.get("currency") == currency.lower()):
            raise PaymentError("Stripe sent an unexpected answer. Try again in a moment.", retryable=True)
        return PaymentAction(kind="redirect", url=url, external_id=session_id)

    def saved_card(self, attempt) -> SavedCard | None:
        """After a Checkout payment: the card it was paid with, made the Customer's default
        for invoices (``invoice_settings.default_payment_method``). None when the
        payment was not a card Checkout of ours."""
        if not (attempt.external_id or "").startswith("cs_"):
            return None
        session = self._session(attempt.external_id)
        customer, intent_id = session.get("customer"), session.get("payment_intent")
        if isinstance(intent_id, dict):
            intent_id = intent_id.get("id")
        if not (_is_id("cus", customer) and _is_id("pi", intent_id)):
            return None
        intent = self._call("GET", f"/v1/payment_intents/{intent_id}")
        method_id = intent.get("payment_method")
        if isinstance(method_id, dict):
            method_id = method_id.get("id")
        if not _is_id("pm", method_id):
            return None
        method = self._call("GET", f"/v1/payment_methods/{method_id}")
        card = method.get("card") if isinstance(method.get("card"), dict) else {}
        self._call("POST", f"/v1/customers/{customer}", data=[
            ("invoice_settings[default_payment_method]", method_id),
        ], idempotency_key=self._key("default-card", customer, method_id))
        brand, last4 = str(card.get("brand") or "")[:20], str(card.get("last4") or "")
        return SavedCard(method_id, brand, last4 if re.fullmatch(r"[0-9]{4}", last4) else "")

    # --- dunning: off-session charges ----------------------------------------------------
    def execute(self, payment) -> GatewayEvent | None:
        """Charge the saved card for ``payment`` (a CollectionAttempt) without the owner:
        a PaymentIntent with ``confirm=true`` and ``off_session=true``; the attempt's own
        Idempotency-Key, so a timeout retried never charges twice. None when no card is
        saved (the owner pays by link); ``PaymentDeclined`` with Stripe's reason code."""
        invoice = payment.invoice
        customer = self._customer_of(invoice)
        if customer is None or not customer.payment_method_id:
            return None
        currency = payment.currency.upper()
        amount = to_gateway_minor(payment.amount, currency, STRIPE_EXPONENTS)
        key = self.require_secret("secret_key", "Stripe secret key")
        response = self.http.request("POST", "/v1/payment_intents", data=[
            ("amount", str(amount)),
            ("currency", currency.lower()),
            ("customer", customer.customer_id),
            ("payment_method", customer.payment_method_id),
            ("confirm", "true"),
            ("off_session", "true"),
            ("description", f"Kameng invoice {invoice.number}"),
            ("metadata[kameng_payment]", str(payment.pk)),
            ("metadata[kameng_invoice]", invoice.number),
        ], idempotency_key=self._key("charge", invoice.number, payment.pk),
            headers={"Authorization": f"Bearer {key}", "Stripe-Version": API_VERSION})
        body = response.json() if isinstance(response.json(), dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else None
        if error is not None:
            if error.get("type") != "card_error":
                raise self.http.error_for(response, str(error.get("message") or ""))
            code, decline = str(error.get("code") or "card_declined")[:40], str(error.get("decline_code") or "")[:40]
            code += f"/{decline}" if decline and decline != code else ""
            if error.get("code") == "authentication_required":
                reason = ("authentication_required: the bank wants the owner to confirm this payment; "
                          "it was sent the pay link.")
            else:
                message = redact(str(error.get("message") or ""), self.http.secrets)[:160]
                reason = f"{code}: {message or 'the card was declined.'}"
            raise PaymentDeclined(f"Stripe declined the saved card ({reason})")
        if not response.ok or not _is_id("pi", body.get("id")):
            raise PaymentError("Stripe sent an unexpected answer. Try again in a moment.", retryable=True)
        if body.get("status") == "succeeded":
            try:
                received = from_gateway_minor(body.get("amount_received"), currency, STRIPE_EXPONENTS)
            except ValueError:
                raise PaymentError("Stripe sent an unexpected amount.") from None
            return GatewayEvent(event_id=f"charge-{payment.pk}", kind="payment.succeeded",
                                payment_reference=str(payment.pk), external_id=body["id"], amount=received,
                                currency=str(body.get("currency") or "").upper(), raw=body)
        if body.get("status") == "processing":  # settles later: the poller or the webhook records it
            return GatewayEvent(event_id=f"charge-{payment.pk}", kind="payment.pending",
                                payment_reference=str(payment.pk), external_id=body["id"], raw=body)
        raise PaymentDeclined(f"Stripe did not complete the charge (status {str(body.get('status'))[:40]}).")

    def fetch_status(self, payment) -> StatusOutcome:
        """Checkout payments through the session; off-session charges through their
        PaymentIntent."""
        if not (payment.external_id or "").startswith("pi_"):
            return super().fetch_status(payment)
        intent = self._call("GET", f"/v1/payment_intents/{payment.external_id}")
        status = intent.get("status")
        if status == "succeeded":
            currency = str(intent.get("currency") or "").upper()
            try:
                amount = from_gateway_minor(intent.get("amount_received"), currency, STRIPE_EXPONENTS)
            except ValueError:
                return StatusOutcome(status="pending", external_id=payment.external_id)
            return StatusOutcome(status="succeeded", external_id=payment.external_id, amount=amount,
                                 currency=currency)
        if status in ("requires_payment_method", "canceled"):
            return StatusOutcome(status="failed", external_id=payment.external_id)
        return StatusOutcome(status="pending", external_id=payment.external_id)


def billing_gateway():
    """The configured platform payment provider (``KAMENG_BILLING_PROVIDER``)."""
    return import_string(settings.KAMENG_BILLING_PROVIDER)()
