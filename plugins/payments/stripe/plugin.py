"""Stripe as a payment provider: a Checkout Session per payment (the buyer pays on Stripe's
hosted page, cards and whatever else the Stripe account offers), form-encoded REST calls
with an ``Idempotency-Key`` on every create and refund, webhooks verified with the
``Stripe-Signature`` header. Decision 0011 explains the choices."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

from django import forms
from django.db import connection

from plugins.base import PluginKind
from plugins.payment import (
    GatewayEvent,
    PaymentAction,
    PaymentDeclined,
    PaymentError,
    RefundOutcome,
    SettlementLine,
    StatusOutcome,
    WebhookRejected,
)
from plugins.payments.gateway import GatewayPaymentPlugin, from_gateway_minor, redact, to_gateway_minor

API_VERSION = "2024-06-20"  # pinned: the shapes below are read against this version
SIGNATURE_HEADER = "Stripe-Signature"
TOLERANCE_SECONDS = 300
# Stripe counts these currencies with another exponent than ISO 4217 / platform_core.money
STRIPE_EXPONENTS = {code: 0 for code in ("BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF",
                                         "VND", "VUV", "XAF", "XOF", "XPF")} | {"ISK": 2, "UGX": 2}
SECRET_KEY_RE = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9]{10,247}$")
WEBHOOK_SECRET_RE = re.compile(r"^whsec_[A-Za-z0-9+/=]{16,200}$")
_EVENT_ID_RE = re.compile(r"^evt_[A-Za-z0-9]{1,120}$")
_OBJECT_ID_RE = re.compile(r"^(cs|pi|ch|re)_[A-Za-z0-9_]{1,200}$")
_REFERENCE_RE = re.compile(r"^[0-9]{1,18}$")


class StripeSettingsForm(forms.Form):
    secret_key = forms.CharField(
        label="Secret key", max_length=260,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stripe Dashboard → Developers → API keys: the secret key (sk_test_… to try things out, "
                  "sk_live_… to take real payments) or a restricted key (rk_…) allowed to write Checkout "
                  "Sessions and Refunds and to read Balance.")
    webhook_secret = forms.CharField(
        label="Webhook signing secret", max_length=220,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stripe Dashboard → Developers → Webhooks → your endpoint "
                  "https://<your shop>/hooks/payments/stripe/ → Signing secret (whsec_…).")

    def clean_secret_key(self) -> str:
        key = (self.cleaned_data.get("secret_key") or "").strip()
        if not key:  # blank keeps the stored key (plugins.services makes the field optional then)
            return key
        if key.startswith("pk_"):
            raise forms.ValidationError("That is the publishable key (pk_…). Paste the secret key: it starts with "
                                        "sk_test_ or sk_live_ (or rk_ for a restricted key).")
        if key.startswith("whsec_"):
            raise forms.ValidationError("That is a webhook signing secret; it goes in the field below. The secret "
                                        "key starts with sk_test_ or sk_live_.")
        if not SECRET_KEY_RE.match(key):
            raise forms.ValidationError("A Stripe secret key starts with sk_test_ or sk_live_ (rk_test_ or rk_live_ "
                                        "for a restricted key), followed by letters and digits only.")
        return key

    def clean_webhook_secret(self) -> str:
        secret = (self.cleaned_data.get("webhook_secret") or "").strip()
        if not secret:
            return secret
        if not WEBHOOK_SECRET_RE.match(secret):
            raise forms.ValidationError("A webhook signing secret starts with whsec_ followed by at least 16 "
                                        "letters and digits. Copy it from your webhook endpoint in the Stripe "
                                        "Dashboard.")
        return secret


# --- webhook signatures ----------------------------------------------------------------


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """``t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]`` -> (timestamp, v1 signatures)."""
    if not header or len(header) > 2000:
        raise WebhookRejected("Missing or oversized Stripe-Signature header.")
    timestamp, signatures = None, []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookRejected("Malformed Stripe-Signature header.")
        if name == "t":
            if timestamp is not None or not re.fullmatch(r"[0-9]{1,12}", value):
                raise WebhookRejected("Malformed timestamp in the Stripe-Signature header.")
            timestamp = int(value)
        elif name == "v1":
            if not re.fullmatch(r"[0-9a-f]{64}", value):
                raise WebhookRejected("Malformed signature in the Stripe-Signature header.")
            signatures.append(value)
        # v0 (test-mode legacy) and future schemes are ignored, as Stripe's own libraries do
    if timestamp is None or not signatures:
        raise WebhookRejected("The Stripe-Signature header needs t= and v1=.")
    return timestamp, signatures


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_signature(*, secret: str, header: str, body: bytes, now: float | None = None) -> int:
    """Accept ``body`` if any v1 signature is HMAC-SHA256 of ``"{t}.{body}"`` under
    ``secret`` (while a secret is rolled, Stripe sends one v1 per live secret) and ``t``
    is within 300 s of now, both ways. Returns the timestamp."""
    timestamp, signatures = parse_signature_header(header)
    now = int(time.time() if now is None else now)
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise WebhookRejected(f"The signature timestamp is more than {TOLERANCE_SECONDS} seconds off.")
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise WebhookRejected("The signature does not match.")
    return timestamp


# --- reading Stripe objects ------------------------------------------------------------

def _text(obj: dict, name: str, pattern: re.Pattern) -> str:
    value = obj.get(name)
    if isinstance(value, str) and pattern.match(value):
        return value
    raise WebhookRejected(f"The event's object has no valid {name}.")


def _currency(obj: dict) -> str:
    value = obj.get("currency")
    if isinstance(value, str) and re.fullmatch(r"[a-z]{3}", value):
        return value.upper()
    raise WebhookRejected("The event's object has no valid currency.")


def _amount(obj: dict, name: str, currency: str) -> int:
    value = obj.get(name)
    try:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return from_gateway_minor(value, currency, STRIPE_EXPONENTS)
    except ValueError:
        pass
    raise WebhookRejected(f"The event's object has no valid {name}.")


def _reference(obj: dict) -> str:
    """Our Payment id, as we gave it to Stripe (client_reference_id or metadata)."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    for value in (obj.get("client_reference_id"), metadata.get("kameng_payment")):
        if isinstance(value, str) and _REFERENCE_RE.match(value):
            return value
    return ""


class StripePaymentPlugin(GatewayPaymentPlugin):
    slug = "stripe"
    name = "Stripe (cards)"
    public_name = "Card (Visa, Mastercard, American Express …)"
    gateway_name = "Stripe"
    kind = PluginKind.PAYMENT
    version = "1.0"
    description = ("Take card payments with your own Stripe account: buyers pay on Stripe's secure checkout page; "
                   "payments are confirmed by signed webhooks, refunds go back to the card.")
    settings_form = StripeSettingsForm
    secret_fields = ("secret_key", "webhook_secret")
    default_base_url = "https://api.stripe.com"
    api_base_setting = "KAMENG_STRIPE_API_BASE"
    supports_test_connection = True

    # --- talking to Stripe -------------------------------------------------------------
    def _call(self, method: str, path: str, *, data: list[tuple[str, str]] | None = None,
              params: dict | None = None, idempotency_key: str = "") -> dict:
        key = self.require_secret("secret_key", "Stripe secret key")
        response = self.http.request(method, path, data=data, params=params, idempotency_key=idempotency_key,
                                     headers={"Authorization": f"Bearer {key}", "Stripe-Version": API_VERSION})
        body = response.json()
        if response.ok and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
        message = str(error.get("message") or "")
        if error.get("type") == "card_error":
            raise PaymentDeclined("Stripe declined the payment: "
                                  + (redact(message, self.http.secrets)[:300] or "no reason given."))
        if response.ok:  # 2xx but not an object: not Stripe talking
            raise PaymentError("Stripe sent an unexpected answer. Try again in a moment.", retryable=True)
        raise self.http.error_for(response, message)

    def _idempotency_key(self, *parts: Any) -> str:
        # the shop's schema keeps keys of two shops on one Stripe account apart
        return "kameng-" + "-".join(str(p) for p in (connection.schema_name, *parts))

    def _session(self, session_id: str) -> dict:
        if not session_id.startswith("cs_"):
            raise PaymentError("This payment has no Stripe Checkout Session.")
        return self._call("GET", f"/v1/checkout/sessions/{session_id}")

    # --- the PaymentPlugin interface ----------------------------------------------------
    def start(self, order, payment, *, return_url: str, notify_url: str) -> PaymentAction:
        # Stripe sends webhooks to the endpoint registered in its Dashboard; notify_url is
        # that same address (docs/payments.md) and is not sent per payment.
        currency = payment.currency.upper()
        try:
            amount = to_gateway_minor(payment.amount, currency, STRIPE_EXPONENTS)
        except ValueError:
            raise PaymentError(f"Stripe cannot take this amount in {currency}.") from None
        reference, number = str(payment.pk), str(order.number)
        body = self._call("POST", "/v1/checkout/sessions", data=[
            ("mode", "payment"),
            ("success_url", return_url),
            ("cancel_url", return_url),
            ("client_reference_id", reference),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", currency.lower()),
            ("line_items[0][price_data][unit_amount]", str(amount)),
            ("line_items[0][price_data][product_data][name]", f"Order {number}"),
            ("metadata[kameng_payment]", reference),
            ("metadata[kameng_order]", number),
            ("payment_intent_data[metadata][kameng_payment]", reference),
            ("payment_intent_data[metadata][kameng_order]", number),
        ], idempotency_key=self._idempotency_key("pay", reference, number))
        session_id, url = body.get("id"), body.get("url")
        if not (isinstance(session_id, str) and session_id.startswith("cs_") and isinstance(url, str)
                and url.startswith(("https://", "http://")) and body.get("amount_total") == amount
                and body.get("currency") == currency.lower()):
            raise PaymentError("Stripe sent an unexpected answer. Try again in a moment.", retryable=True)
        return PaymentAction(kind="redirect", url=url, external_id=session_id)

    def handle_webhook(self, request) -> list[GatewayEvent]:
        body = request.body
        secret = self.secret("webhook_secret")
        if not secret:
            raise WebhookRejected("Stripe is not set up in this shop: no webhook signing secret, so no event can be "
                            "verified.")
        verify_signature(secret=secret, header=request.headers.get(SIGNATURE_HEADER, ""), body=body)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected("The body is not JSON.") from None
        try:
            return self.events_from_payload(payload)
        except PaymentError as exc:  # looking a refund up failed: Stripe sends the event again
            raise WebhookRejected(f"Stripe could not be asked about this event: {exc.message}", status=503) from None

    def events_from_payload(self, payload: Any) -> list[GatewayEvent]:
        """Map a verified Stripe event to ours; malformed ones are refused."""
        if not isinstance(payload, dict):
            raise WebhookRejected("The event is not a JSON object.")
        event_id, kind = payload.get("id"), payload.get("type")
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        obj = data.get("object")
        if not (isinstance(event_id, str) and _EVENT_ID_RE.match(event_id) and isinstance(kind, str)
                and isinstance(obj, dict)):
            raise WebhookRejected("The event lacks an id, a type or data.object.")
        key = self.secret("secret_key") or ""
        livemode = payload.get("livemode")
        if isinstance(livemode, bool) and key and livemode != ("_live_" in key):
            raise WebhookRejected("The event comes from Stripe's " + ("live" if livemode else "test")
                            + " mode but the shop's key is for the other mode.")
        ignored = [GatewayEvent(event_id=event_id, kind="ignored", raw=payload)]
        if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            if obj.get("payment_status") != "paid":
                return ignored  # an asynchronous method: its own success event follows
            currency = _currency(obj)
            return [GatewayEvent(event_id=event_id, kind="payment.succeeded", payment_reference=_reference(obj),
                                 external_id=_text(obj, "id", _OBJECT_ID_RE), currency=currency,
                                 amount=_amount(obj, "amount_total", currency), raw=payload)]
        if kind in ("checkout.session.async_payment_failed", "checkout.session.expired"):
            return [GatewayEvent(event_id=event_id, kind="payment.failed", payment_reference=_reference(obj),
                                 external_id=_text(obj, "id", _OBJECT_ID_RE), raw=payload)]
        if kind in ("payment_intent.succeeded", "payment_intent.payment_failed"):
            reference = _reference(obj)
            if not reference:
                return ignored  # not one of ours (another integration on the same Stripe account)
            if kind == "payment_intent.payment_failed":
                return [GatewayEvent(event_id=event_id, kind="payment.failed", payment_reference=reference,
                                     raw=payload)]
            currency = _currency(obj)
            # the PaymentIntent does not name its Checkout Session (our external id): match by reference
            return [GatewayEvent(event_id=event_id, kind="payment.succeeded", payment_reference=reference,
                                 currency=currency, amount=_amount(obj, "amount_received", currency), raw=payload)]
        if kind == "charge.refunded":
            return self._refund_events(event_id, obj, payload)
        return ignored

    def _refund_events(self, event_id: str, charge: dict, payload: dict) -> list[GatewayEvent]:
        """One event per succeeded refund of the charge: Stripe sends ``charge.refunded``
        for each partial refund, listing all of them; refunds already known are matched
        by their id in the core and not counted twice."""
        intent = _text(charge, "payment_intent", _OBJECT_ID_RE)
        currency = _currency(charge)
        reference, session_id = _reference(charge), ""
        if not reference:  # charges made before metadata reached them: ask which session paid
            found = self._call("GET", "/v1/checkout/sessions", params={"payment_intent": intent, "limit": 1})
            sessions = found.get("data") if isinstance(found.get("data"), list) else []
            if not sessions or not isinstance(sessions[0], dict):
                return [GatewayEvent(event_id=event_id, kind="ignored", raw=payload)]
            reference, session_id = _reference(sessions[0]), str(sessions[0].get("id") or "")
        listed = charge.get("refunds") if isinstance(charge.get("refunds"), dict) else {}
        refunds = listed.get("data")
        if not isinstance(refunds, list) or listed.get("has_more") is not False:
            # not embedded (API versions since 2022-11-15) or cut short: ask Stripe
            refunds = self._call("GET", "/v1/refunds", params={"payment_intent": intent, "limit": 100}).get("data")
        events = []
        for refund in refunds if isinstance(refunds, list) else []:
            if not isinstance(refund, dict) or refund.get("status") != "succeeded":
                continue
            refund_id = _text(refund, "id", _OBJECT_ID_RE)
            events.append(GatewayEvent(
                event_id=f"{event_id}:{refund_id}", kind="refund.succeeded", payment_reference=reference,
                external_id=session_id, refund_external_id=refund_id, currency=currency,
                amount=_amount(refund, "amount", currency), raw=payload))
        return events or [GatewayEvent(event_id=event_id, kind="ignored", raw=payload)]

    def refund(self, payment, amount: int) -> RefundOutcome:
        if not payment.external_id:
            return RefundOutcome(succeeded=False, message="This payment never reached Stripe.")
        intent = self._session(payment.external_id).get("payment_intent")
        if isinstance(intent, dict):
            intent = intent.get("id")
        if not isinstance(intent, str) or not intent.startswith("pi_"):
            return RefundOutcome(succeeded=False, message="Stripe has no completed payment for this order.")
        body = self._call("POST", "/v1/refunds", data=[
            ("payment_intent", intent),
            ("amount", str(to_gateway_minor(amount, payment.currency, STRIPE_EXPONENTS))),
            ("metadata[kameng_payment]", str(payment.pk)),
        ], idempotency_key=self._idempotency_key("refund", payment.pk, payment.refunded_amount, amount))
        refund_id, status = body.get("id"), body.get("status")
        if not isinstance(refund_id, str) or not refund_id.startswith("re_"):
            return RefundOutcome(succeeded=False, message="Stripe sent an unexpected answer to the refund.")
        if status == "succeeded":
            return RefundOutcome(succeeded=True, external_id=refund_id)
        if status in ("pending", "requires_action"):
            return RefundOutcome(succeeded=False, pending=True, external_id=refund_id,
                                 message="Stripe is processing the refund.")
        return RefundOutcome(succeeded=False, external_id=refund_id, message="Stripe could not refund this payment.")

    def fetch_status(self, payment) -> StatusOutcome:
        if not payment.external_id:
            return StatusOutcome(status="pending")
        session = self._session(payment.external_id)
        if session.get("payment_status") == "paid" and isinstance(session.get("amount_total"), int):
            currency = str(session.get("currency") or "").upper()
            try:
                amount = from_gateway_minor(session["amount_total"], currency, STRIPE_EXPONENTS)
            except ValueError:
                return StatusOutcome(status="pending", external_id=payment.external_id)
            return StatusOutcome(status="succeeded", external_id=payment.external_id, amount=amount,
                                 currency=currency)
        if session.get("status") == "expired":
            return StatusOutcome(status="failed", external_id=payment.external_id)
        return StatusOutcome(status="pending", external_id=payment.external_id)

    # --- reconciliation (对账): docs/reconciliation.md, decision 0031 ----------------------
    supports_settlement = True

    def settlement(self, day) -> list[SettlementLine]:
        from plugins.payments.stripe import settlement as report

        transactions = report.balance_transactions(
            lambda params: self._call("GET", "/v1/balance_transactions", params=params), day)
        sessions: dict[str, dict | None] = {}

        def session_for(intent_id: str) -> dict | None:
            if intent_id not in sessions:  # one question per PaymentIntent, however many refunds it has
                found = self._call("GET", "/v1/checkout/sessions", params={"payment_intent": intent_id, "limit": 1})
                data = found.get("data")
                if not isinstance(data, list) or (data and not (
                        isinstance(data[0], dict) and _OBJECT_ID_RE.match(str(data[0].get("id") or ""))
                        and str(data[0]["id"]).startswith("cs_"))):
                    raise report.unreadable(f"the Checkout Session of {intent_id} is unreadable")
                sessions[intent_id] = data[0] if data else None
            return sessions[intent_id]

        return report.settlement_lines(transactions, session_for=session_for, exponents=STRIPE_EXPONENTS)

    def test_connection(self) -> str:
        body = self._call("GET", "/v1/balance")
        mode = "live" if body.get("livemode") else "test"
        return f"Connected to Stripe in {mode} mode: the secret key works."
