"""PayPal as a payment provider: Orders v2 (intent CAPTURE) over the REST API with an
OAuth2 client-credentials token (cached, encrypted, until shortly before it expires),
``PayPal-Request-Id`` on every create, capture and refund, webhooks verified by PayPal's
own ``verify-webhook-signature`` API. Decision 0012 explains the choices."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from platform_core import crypto
from plugins.base import PluginKind
from plugins.payment import (
    GatewayEvent,
    PaymentAction,
    PaymentDeclined,
    PaymentError,
    PaymentMisconfigured,
    PaymentRetryable,
    RefundOutcome,
    SettlementLine,
    StatusOutcome,
    WebhookRejected,
)
from plugins.payments.gateway import GatewayPaymentPlugin, GatewayResponse, from_decimal_string, redact, \
    to_decimal_string

LIVE_API = "https://api-m.paypal.com"
SANDBOX_API = "https://api-m.sandbox.paypal.com"
# PayPal writes these without decimals although ISO 4217 gives them two
PAYPAL_EXPONENTS = {"HUF": 0, "TWD": 0, "JPY": 0}
#: how far the transmission time of a webhook may be from our clock
TOLERANCE_SECONDS = 600
AUTH_ALGOS = frozenset({"SHA256withRSA"})
CREDENTIAL_RE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
WEBHOOK_ID_RE = re.compile(r"^[A-Z0-9]{10,40}$")
_EVENT_ID_RE = re.compile(r"^WH-[A-Za-z0-9-]{1,120}$")
_PAYPAL_ID_RE = re.compile(r"^[A-Z0-9]{5,40}$")
_REFERENCE_RE = re.compile(r"^[0-9]{1,18}$")
_DECLINE_ISSUES = frozenset({"INSTRUMENT_DECLINED", "PAYER_CANNOT_PAY", "TRANSACTION_REFUSED",
                             "PAYER_ACTION_REQUIRED", "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING"})


class PayPalSettingsForm(forms.Form):
    environment = forms.ChoiceField(
        choices=[("sandbox", "Sandbox: PayPal test accounts, no real money"), ("live", "Live: real payments")],
        initial="sandbox",
        help_text="Sandbox credentials only work with Sandbox, live ones only with Live.")
    client_id = forms.CharField(
        label="Client ID", max_length=128,
        help_text="PayPal Developer Dashboard → Apps & Credentials → your app → Client ID.")
    client_secret = forms.CharField(
        label="Secret", max_length=128,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Same page: Secret key 1 (or 2). Stored encrypted.")
    webhook_id = forms.CharField(
        label="Webhook ID", max_length=40,
        help_text="Same app → Webhooks → Add webhook with the URL https://<your shop>/hooks/payments/paypal/ and "
                  "the events Checkout order approved, Payment capture completed / denied / refunded; then copy "
                  "its Webhook ID (letters and digits, like 8PT597110X687430LKGECATA).")

    def clean_client_id(self) -> str:
        value = (self.cleaned_data.get("client_id") or "").strip()
        if not CREDENTIAL_RE.match(value):
            raise forms.ValidationError("A PayPal client ID is 20 to 128 letters, digits, - or _. Copy it from "
                                        "Apps & Credentials in the PayPal Developer Dashboard.")
        return value

    def clean_client_secret(self) -> str:
        value = (self.cleaned_data.get("client_secret") or "").strip()
        if value and not CREDENTIAL_RE.match(value):
            raise forms.ValidationError("A PayPal secret is 20 to 128 letters, digits, - or _. Use Show under "
                                        "Secret key in Apps & Credentials and copy all of it.")
        return value

    def clean_webhook_id(self) -> str:
        value = (self.cleaned_data.get("webhook_id") or "").strip()
        if value.startswith("WH-"):
            raise forms.ValidationError("That looks like the ID of one webhook event (WH-…). Paste the ID of the "
                                        "webhook itself, shown in your app's Webhooks list.")
        if not WEBHOOK_ID_RE.match(value):
            raise forms.ValidationError("A PayPal webhook ID is 10 to 40 capital letters and digits, like "
                                        "8PT597110X687430LKGECATA.")
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("client_secret") and cleaned.get("client_secret") == cleaned.get("client_id"):
            self.add_error("client_secret", "This is the client ID again; paste the secret.")
        return cleaned



def _amount_of(obj: Any, field: str = "amount") -> tuple[int, str]:
    """``{"amount": {"currency_code": "USD", "value": "12.34"}}`` -> (1234, "USD")."""
    amount = obj.get(field) if isinstance(obj, dict) else None
    if isinstance(amount, dict):
        currency, value = amount.get("currency_code"), amount.get("value")
        if isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency) and isinstance(value, str):
            try:
                minor = from_decimal_string(value, currency, PAYPAL_EXPONENTS)
            except ValueError:
                minor = 0
            if minor > 0:
                return minor, currency
    raise WebhookRejected(f"PayPal's {field} is missing or malformed.")


def _id(obj: dict, name: str = "id") -> str:
    value = obj.get(name)
    if isinstance(value, str) and _PAYPAL_ID_RE.match(value):
        return value
    raise WebhookRejected(f"PayPal's object has no valid {name}.")


def _reference(*objects: Any) -> str:
    for obj in objects:
        value = obj.get("custom_id") if isinstance(obj, dict) else None
        if isinstance(value, str) and _REFERENCE_RE.match(value):
            return value
    return ""


def _captures(order: dict) -> list[dict]:
    units = order.get("purchase_units")
    unit = units[0] if isinstance(units, list) and units and isinstance(units[0], dict) else {}
    payments = unit.get("payments") if isinstance(unit.get("payments"), dict) else {}
    captures = payments.get("captures")
    return [c for c in captures if isinstance(c, dict)] if isinstance(captures, list) else []


def _unit(order: dict) -> dict:
    units = order.get("purchase_units")
    return units[0] if isinstance(units, list) and units and isinstance(units[0], dict) else {}


class PayPalPaymentPlugin(GatewayPaymentPlugin):
    slug = "paypal"
    name = "PayPal"
    public_name = "PayPal"
    gateway_name = "PayPal"
    kind = PluginKind.PAYMENT
    version = "1.0"
    description = ("Take payments with your PayPal business account: buyers approve on PayPal, the payment is "
                   "captured at once and confirmed by signed webhooks; refunds go back through PayPal.")
    settings_form = PayPalSettingsForm
    secret_fields = ("client_secret",)
    idempotency_header = "PayPal-Request-Id"
    api_base_setting = "KAMENG_PAYPAL_API_BASE"
    supports_test_connection = True

    @property
    def base_url(self) -> str:
        override = getattr(settings, self.api_base_setting, "")
        live = self.settings.get("environment") == "live"
        return (override or (LIVE_API if live else SANDBOX_API)).rstrip("/")

    @property
    def environment(self) -> str:
        return "live" if self.settings.get("environment") == "live" else "sandbox"

    # --- OAuth2 ------------------------------------------------------------------------
    def _credentials(self) -> tuple[str, str]:
        client_id = self.settings.get("client_id") or ""
        if not client_id:
            raise PaymentMisconfigured("PayPal is not set up: enter the client ID in the shop console (Plugins).")
        return client_id, self.require_secret("client_secret", "PayPal secret")

    def _token_cache_key(self, client_id: str, secret: str) -> str:
        # a new secret or environment gets a new token; the key itself reveals neither
        digest = hashlib.sha256(f"{self.base_url}|{client_id}|{secret}".encode()).hexdigest()
        return f"payments:paypal:token:{digest}"

    def _token(self, *, fresh: bool = False) -> str:
        client_id, secret = self._credentials()
        key = self._token_cache_key(client_id, secret)
        if not fresh:
            sealed = cache.get(key)
            if sealed:
                try:
                    return crypto.decrypt_str(self.shop, sealed, context="plugin:paypal:access_token")
                except crypto.DecryptionError:
                    pass  # a key rotation or a foreign value: fetch a new token
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        response = self.http.request("POST", "/v1/oauth2/token", data={"grant_type": "client_credentials"},
                                     headers={"Authorization": f"Basic {basic}"}, idempotent=True)
        body = response.json() if response.ok else None
        if response.status in (400, 401, 403):
            raise PaymentMisconfigured("PayPal refused the shop's client ID and secret; check the PayPal settings in "
                                       "the shop console (Sandbox and Live credentials differ).")
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise self.http.error_for(response) if not response.ok else PaymentRetryable(
                "PayPal sent an unexpected answer. Try again in a moment.")
        token, expires_in = body["access_token"], body.get("expires_in")
        lifetime = expires_in if isinstance(expires_in, int) and not isinstance(expires_in, bool) else 0
        if lifetime > 120:  # keep it until two minutes before PayPal drops it
            cache.set(key, crypto.encrypt(self.shop, token, context="plugin:paypal:access_token"), lifetime - 120)
        self.http.secrets.append(token)
        return token

    # --- REST calls ----------------------------------------------------------------------
    def _request(self, method: str, path: str, *, json_body: Any = None, content: bytes | None = None,
                 request_id: str = "", idempotent: bool | None = None) -> GatewayResponse:
        headers = {"Prefer": "return=representation"}
        if json_body is not None or content is not None:
            headers["Content-Type"] = "application/json"
        data = json.dumps(json_body).encode() if json_body is not None else content
        response = None
        for fresh in (False, True):
            token = self._token(fresh=fresh)
            response = self.http.request(method, path, content=data, idempotency_key=request_id,
                                         idempotent=idempotent, headers={**headers, "Authorization": f"Bearer {token}"})
            if response.status != 401:
                break  # a 401 with a cached token: it was revoked or expired early; once more with a new one
        return response

    def _ok(self, response: GatewayResponse) -> dict:
        body = response.json()
        if response.ok and isinstance(body, dict):
            return body
        if response.ok:
            raise PaymentRetryable("PayPal sent an unexpected answer. Try again in a moment.")
        details = body.get("details") if isinstance(body, dict) and isinstance(body.get("details"), list) else []
        issues = [d.get("issue") for d in details if isinstance(d, dict)]
        message = ""
        if isinstance(body, dict):
            message = "; ".join(str(d.get("description") or d.get("issue")) for d in details if isinstance(d, dict)) \
                or str(body.get("message") or body.get("name") or "")
        if _DECLINE_ISSUES & set(issues):
            raise PaymentDeclined("PayPal declined the payment: "
                                  + (redact(message, self.http.secrets)[:300] or "no reason given."))
        raise self.http.error_for(response, message)

    def _request_id(self, *parts: Any) -> str:
        # the shop's schema keeps two shops on one PayPal account apart
        return "kameng-" + "-".join(str(p) for p in (connection.schema_name, *parts))

    def _order(self, order_id: str) -> dict:
        if not _PAYPAL_ID_RE.match(order_id or ""):
            raise PaymentError("This payment has no PayPal order.")
        return self._ok(self._request("GET", f"/v2/checkout/orders/{order_id}"))

    def _capture(self, order_id: str) -> dict:
        """Capture an approved order (idempotent: one request id per order); an order
        captured already is read back instead."""
        response = self._request("POST", f"/v2/checkout/orders/{order_id}/capture", content=b"{}",
                                 request_id=self._request_id("capture", order_id))
        body = response.json()
        details = body.get("details") if isinstance(body, dict) and isinstance(body.get("details"), list) else []
        if response.status == 422 and any(isinstance(d, dict) and d.get("issue") == "ORDER_ALREADY_CAPTURED"
                                          for d in details):
            return self._order(order_id)
        return self._ok(response)

    def _settled(self, order: dict) -> tuple[str, dict]:
        """("succeeded" | "failed" | "pending", the capture) of an order."""
        captures = _captures(order)
        # a capture refunded later still took the money first
        done = next((c for c in captures if c.get("status") in ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED")),
                    None)
        if done is not None:
            return "succeeded", done
        if any(c.get("status") in ("DECLINED", "FAILED") for c in captures) or order.get("status") == "VOIDED":
            return "failed", captures[0] if captures else {}
        return "pending", captures[0] if captures else {}

    # --- the PaymentPlugin interface ----------------------------------------------------
    def start(self, order, payment, *, return_url: str, notify_url: str) -> PaymentAction:
        # PayPal posts webhooks to the URL registered with the app (docs/payments.md)
        currency = payment.currency.upper()
        try:
            value = to_decimal_string(payment.amount, currency, PAYPAL_EXPONENTS)
        except ValueError:
            raise PaymentError(f"PayPal cannot take this amount in {currency}.") from None
        reference = str(payment.pk)
        body = self._ok(self._request("POST", "/v2/checkout/orders", json_body={
            "intent": "CAPTURE",
            "purchase_units": [{
                "reference_id": reference, "custom_id": reference, "description": f"Order {order.number}",
                "amount": {"currency_code": currency, "value": value},
            }],
            "payment_source": {"paypal": {"experience_context": {
                "return_url": return_url, "cancel_url": return_url, "user_action": "PAY_NOW",
                "shipping_preference": "NO_SHIPPING",
            }}},
        }, request_id=self._request_id("pay", reference, order.number)))
        order_id = body.get("id")
        links = body.get("links") if isinstance(body.get("links"), list) else []
        approve = next((link.get("href") for link in links if isinstance(link, dict)
                        and link.get("rel") in ("payer-action", "approve")), None)
        echoed = _unit(body).get("amount")
        if not (isinstance(order_id, str) and _PAYPAL_ID_RE.match(order_id) and isinstance(approve, str)
                and approve.startswith(("https://", "http://"))
                and (echoed is None or echoed == {"currency_code": currency, "value": value})):
            raise PaymentRetryable("PayPal sent an unexpected answer. Try again in a moment.")
        return PaymentAction(kind="redirect", url=approve, external_id=order_id)

    def handle_webhook(self, request) -> list[GatewayEvent]:
        webhook_id = self.settings.get("webhook_id") or ""
        if not webhook_id:
            raise WebhookRejected("PayPal is not set up in this shop: no webhook ID, so no event can be verified.")
        headers = self._transmission_headers(request)
        raw = request.body
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected("The body is not JSON.") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("resource"), dict) \
                or not isinstance(payload.get("id"), str) or not _EVENT_ID_RE.match(payload["id"]) \
                or not isinstance(payload.get("event_type"), str):
            raise WebhookRejected("The event lacks an id, an event_type or a resource.")
        self._verify(headers, webhook_id, raw)
        try:
            return self.events_from_payload(payload)
        except PaymentError as exc:  # capturing or reading back failed: PayPal sends the event again
            raise WebhookRejected(f"PayPal could not be asked about this event: {exc.message}", 503) from None

    def _transmission_headers(self, request) -> dict[str, str]:
        names = {"auth_algo": "PAYPAL-AUTH-ALGO", "cert_url": "PAYPAL-CERT-URL",
                 "transmission_id": "PAYPAL-TRANSMISSION-ID", "transmission_sig": "PAYPAL-TRANSMISSION-SIG",
                 "transmission_time": "PAYPAL-TRANSMISSION-TIME"}
        values = {field: request.headers.get(header, "") for field, header in names.items()}
        missing = [names[field] for field, value in values.items() if not value or len(value) > 2000]
        if missing:
            raise WebhookRejected(f"Missing PayPal header(s): {', '.join(missing)}.")
        if values["auth_algo"] not in AUTH_ALGOS:
            raise WebhookRejected("Unknown PAYPAL-AUTH-ALGO.")
        if not re.fullmatch(r"[A-Za-z0-9-]{1,100}", values["transmission_id"]):
            raise WebhookRejected("Malformed PAYPAL-TRANSMISSION-ID.")
        if not values["cert_url"].startswith(("https://", "http://")):
            raise WebhookRejected("Malformed PAYPAL-CERT-URL.")
        try:
            sent = datetime.fromisoformat(values["transmission_time"].replace("Z", "+00:00"))
        except ValueError:
            raise WebhookRejected("Malformed PAYPAL-TRANSMISSION-TIME.") from None
        if sent.tzinfo is None:
            raise WebhookRejected("Malformed PAYPAL-TRANSMISSION-TIME.")
        if abs((datetime.now(timezone.utc) - sent).total_seconds()) > TOLERANCE_SECONDS:
            raise WebhookRejected(f"The transmission time is more than {TOLERANCE_SECONDS} seconds off.")
        return values

    def _verify(self, headers: dict[str, str], webhook_id: str, raw: bytes) -> None:
        """Ask PayPal whether it signed these exact bytes for this shop's webhook. The
        event goes in byte for byte: re-serialising it would change what was signed."""
        fields = json.dumps({**headers, "webhook_id": webhook_id})
        content = fields[:-1].encode() + b', "webhook_event": ' + raw + b"}"
        try:
            body = self._ok(self._request("POST", "/v1/notifications/verify-webhook-signature", content=content,
                                          idempotent=True))
        except PaymentRetryable:
            raise WebhookRejected("PayPal could not be asked to verify the event; send it again later.", 503) from None
        except PaymentError as exc:
            raise WebhookRejected(f"The event could not be verified: {exc.message}") from None
        if body.get("verification_status") != "SUCCESS":
            raise WebhookRejected("PayPal says the signature does not match.")

    def events_from_payload(self, payload: dict) -> list[GatewayEvent]:
        event_id, kind, resource = payload["id"], payload["event_type"], payload["resource"]
        if kind == "CHECKOUT.ORDER.APPROVED":
            order_id = _id(resource)
            try:
                captured = self._capture(order_id)
            except PaymentDeclined:  # the buyer's funding was refused: they may pay again
                return [GatewayEvent(event_id=event_id, kind="payment.failed", payment_reference=_reference(
                    _unit(resource)), external_id=order_id, raw=payload)]
            return [self._event_from_order(event_id, captured, payload)]
        if kind == "PAYMENT.CAPTURE.COMPLETED":
            amount, currency = _amount_of(resource)
            related = resource.get("supplementary_data", {}).get("related_ids", {}) \
                if isinstance(resource.get("supplementary_data"), dict) else {}
            order_id = related.get("order_id") if isinstance(related, dict) else None
            return [GatewayEvent(event_id=event_id, kind="payment.succeeded", payment_reference=_reference(resource),
                                 external_id=order_id if isinstance(order_id, str) and _PAYPAL_ID_RE.match(order_id)
                                 else "", amount=amount, currency=currency, raw=payload)]
        if kind in ("PAYMENT.CAPTURE.DENIED", "PAYMENT.CAPTURE.DECLINED"):
            reference = _reference(resource)
            return [GatewayEvent(event_id=event_id, kind="payment.failed" if reference else "ignored",
                                 payment_reference=reference, raw=payload)]
        if kind == "PAYMENT.CAPTURE.REFUNDED":
            return [self._refund_event(event_id, resource, payload)]
        return [GatewayEvent(event_id=event_id, kind="ignored", raw=payload)]

    def _event_from_order(self, event_id: str, order: dict, payload: dict) -> GatewayEvent:
        state, capture = self._settled(order)
        reference = _reference(capture, _unit(order))
        if state == "pending":  # e.g. an eCheck: PAYMENT.CAPTURE.COMPLETED follows
            return GatewayEvent(event_id=event_id, kind="ignored", raw=payload)
        if state == "failed":
            return GatewayEvent(event_id=event_id, kind="payment.failed", payment_reference=reference,
                                external_id=_id(order), raw=payload)
        amount, currency = _amount_of(capture)
        return GatewayEvent(event_id=event_id, kind="payment.succeeded", payment_reference=reference,
                            external_id=_id(order), amount=amount, currency=currency, raw=payload)

    def _refund_event(self, event_id: str, refund: dict, payload: dict) -> GatewayEvent:
        if refund.get("status") != "COMPLETED":
            return GatewayEvent(event_id=event_id, kind="ignored", raw=payload)
        amount, currency = _amount_of(refund)
        reference, order_id = _reference(refund), ""
        if not reference:  # refunded in PayPal's own console: the capture knows whose it is
            links = refund.get("links") if isinstance(refund.get("links"), list) else []
            up = next((link.get("href") for link in links if isinstance(link, dict) and link.get("rel") == "up"), "")
            match = re.search(r"/v2/payments/captures/([A-Z0-9]{5,40})$", up or "")
            if not match:
                raise WebhookRejected("The refund does not name its capture.")
            capture = self._ok(self._request("GET", f"/v2/payments/captures/{match.group(1)}"))
            reference = _reference(capture)
            related = capture.get("supplementary_data", {}).get("related_ids", {}) \
                if isinstance(capture.get("supplementary_data"), dict) else {}
            order_id = related.get("order_id", "") if isinstance(related, dict) else ""
        return GatewayEvent(event_id=event_id, kind="refund.succeeded", payment_reference=reference,
                            external_id=order_id if isinstance(order_id, str) else "",
                            refund_external_id=_id(refund), amount=amount, currency=currency, raw=payload)

    def refund(self, payment, amount: int) -> RefundOutcome:
        if not payment.external_id:
            return RefundOutcome(succeeded=False, message="This payment never reached PayPal.")
        state, capture = self._settled(self._order(payment.external_id))
        if state != "succeeded":
            return RefundOutcome(succeeded=False, message="PayPal has no completed capture for this payment.")
        currency = payment.currency.upper()
        body = self._ok(self._request("POST", f"/v2/payments/captures/{_id(capture)}/refund", json_body={
            "amount": {"currency_code": currency, "value": to_decimal_string(amount, currency, PAYPAL_EXPONENTS)},
            "custom_id": str(payment.pk),
        }, request_id=self._request_id("refund", payment.pk, payment.refunded_amount, amount)))
        refund_id, status = body.get("id"), body.get("status")
        if not isinstance(refund_id, str) or not _PAYPAL_ID_RE.match(refund_id):
            return RefundOutcome(succeeded=False, message="PayPal sent an unexpected answer to the refund.")
        if status == "COMPLETED":
            return RefundOutcome(succeeded=True, external_id=refund_id)
        if status == "PENDING":
            return RefundOutcome(succeeded=False, pending=True, external_id=refund_id,
                                 message="PayPal is processing the refund.")
        return RefundOutcome(succeeded=False, external_id=refund_id, message="PayPal could not refund this payment.")

    def fetch_status(self, payment) -> StatusOutcome:
        """Ask PayPal; an order the buyer approved but nobody captured (its webhook was
        lost) is captured now: the buyer already agreed to pay."""
        if not payment.external_id:
            return StatusOutcome(status="pending")
        order = self._order(payment.external_id)
        if order.get("status") == "APPROVED":
            try:
                order = self._capture(payment.external_id)
            except PaymentDeclined:
                return StatusOutcome(status="failed", external_id=payment.external_id)
        state, capture = self._settled(order)
        if state != "succeeded":
            return StatusOutcome(status=state, external_id=payment.external_id)
        try:
            amount, currency = _amount_of(capture)
        except WebhookRejected:
            return StatusOutcome(status="pending", external_id=payment.external_id)
        return StatusOutcome(status="succeeded", external_id=payment.external_id, amount=amount, currency=currency)

    # --- reconciliation (对账): docs/reconciliation.md, decision 0031 ----------------------
    supports_settlement = True

    def settlement(self, day) -> list[SettlementLine]:
        from urllib.parse import urlencode

        from plugins.payments.paypal import reports

        def page(params: dict) -> dict:
            response = self._request("GET", f"/v1/reporting/transactions?{urlencode(params)}")
            if response.status == 403:
                raise PaymentMisconfigured("PayPal does not let this app search transactions: tick Transaction "
                                           "Search in the app's settings on developer.paypal.com.")
            return self._ok(response)

        captures: dict[str, dict] = {}

        def capture(capture_id: str) -> dict:
            if capture_id not in captures:  # one question per capture, however many refunds it has
                captures[capture_id] = self._ok(self._request("GET", f"/v2/payments/captures/{capture_id}"))
            return captures[capture_id]

        return reports.settlement_lines(reports.transactions(page, day), capture=capture, exponents=PAYPAL_EXPONENTS)

    def test_connection(self) -> str:
        self._token(fresh=True)
        return f"Connected to PayPal ({self.environment}): the client ID and secret work."
