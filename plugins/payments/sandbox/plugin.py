"""The sandbox gateway as a payment provider: real HTTP on kept connections, webhooks
verified with HMAC-SHA256 and a timestamp tolerance. Real gateways follow the same
shape (docs/payments-sandbox.md)."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import select
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings

from plugins.base import PluginKind
from plugins.payment import (
    GatewayEvent,
    PaymentAction,
    PaymentError,
    PaymentMisconfigured,
    PaymentPlugin,
    RefundOutcome,
    SettlementLine,
    StatusOutcome,
    WebhookRejected,
)
from plugins.payments.sandbox.wire import KeptConnection, RemoteClosed, form_body, request_bytes

API_KEY_RE = re.compile(r"^sk_sandbox_[A-Za-z0-9]{16,64}$")
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8001"
SIGNATURE_HEADER = "Sandbox-Signature"
TOLERANCE_SECONDS = 300
TIMEOUT = (3.05, 10)  # (connect, read) seconds: a buyer is waiting


#: per thread and process: (scheme, host, port) -> an open connection to that gateway,
#: kept between calls (a new TCP connection per checkout cost both sides CPU; against a
#: TLS gateway it would cost a handshake per payment)
_kept = threading.local()


def _kept_connections() -> dict:
    if getattr(_kept, "pid", None) != os.getpid():  # a forked child must not share its parent's sockets
        _kept.pid, _kept.connections = os.getpid(), {}
    return _kept.connections


def _closed_by_peer(connection: KeptConnection) -> bool:
    """An idle kept connection that is readable has been closed by the other side (or
    sent something unasked): either way it cannot carry the next request."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _http_call(method: str, url: str, *, form: dict | None, headers: dict[str, str],
               retry_safe: bool = True) -> tuple[int, bytes]:
    """One request to the gateway on a kept connection (``wire.py``: ``requests`` cost
    ~1 ms more CPU per call, ``http.client`` ~0.14 ms more, paid on every checkout;
    docs/decisions/0040). No redirects are followed. A kept connection the gateway
    dropped in the meantime is replaced and the request sent once more on a new one,
    only when ``retry_safe`` (a read, or a write with an Idempotency-Key: the gateway
    does it at most once)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    body = form_body(form) if form is not None else None
    if body is not None:
        headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kept = _kept_connections()
    where = (parts.scheme, parts.hostname, parts.port)
    connection = kept.pop(where, None)
    if connection is not None and _closed_by_peer(connection):
        connection.close()
        connection = None
    reused = connection is not None
    if connection is None:
        connection = KeptConnection(parts.scheme, parts.hostname, parts.port, connect_timeout=TIMEOUT[0],
                                    read_timeout=TIMEOUT[1])
    try:
        status, answer, done = connection.exchange(request_bytes(method, target, connection.host_header, headers,
                                                                 body))
    except (RemoteClosed, ConnectionResetError, BrokenPipeError):
        connection.close()
        if reused and retry_safe:  # it went away between our calls: once more, on a new connection
            return _http_call(method, url, form=form, headers=headers, retry_safe=False)
        raise
    except BaseException:
        connection.close()
        raise
    if done:
        connection.close()
    else:
        kept[where] = connection
    return status, answer


# derivation shared with the gateway (sandbox_gateway/signing.py); a client keeps its own copy
_WEBHOOK_SECRET_LABEL = b"kameng-sandbox-webhook-secret-v1"
_EVENT_ID_RE = re.compile(r"^evt_[A-Za-z0-9]{1,100}$")
_EXTERNAL_ID_RE = re.compile(r"^(pay|re)_[A-Za-z0-9]{1,100}$")


def sandbox_allowed() -> bool:
    """Off in production unless the platform says otherwise: a Pay button that moves no
    money must never deliver real goods by accident."""
    return bool(getattr(settings, "KAMENG_SANDBOX_ENABLED", not getattr(settings, "PRODUCTION", False)))


def default_gateway_url() -> str:
    return (getattr(settings, "KAMENG_SANDBOX_URL", "") or DEFAULT_GATEWAY_URL).rstrip("/")


def webhook_secret_for(api_key: str) -> str:
    return "whsec_" + hmac.new(api_key.encode(), _WEBHOOK_SECRET_LABEL, hashlib.sha256).hexdigest()


class SandboxSettingsForm(forms.Form):
    gateway_url = forms.URLField(
        required=False, assume_scheme="http", max_length=200,
        help_text="Where the sandbox gateway runs. Leave blank for the one that comes with Kameng.")
    api_key = forms.CharField(
        max_length=80, widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="sk_sandbox_ followed by 16 to 64 letters or digits. The sandbox opens an account for a "
                  "new key on first use; keep one key per shop.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gateway_url"].widget.attrs["placeholder"] = default_gateway_url()

    def clean_gateway_url(self) -> str:
        return (self.cleaned_data.get("gateway_url") or "").rstrip("/")

    def clean_api_key(self) -> str:
        key = (self.cleaned_data.get("api_key") or "").strip()
        if not key:  # blank keeps the stored key (plugins.services makes the field optional then)
            return key
        if not key.startswith("sk_sandbox_"):
            raise forms.ValidationError("Sandbox API keys start with sk_sandbox_.")
        if not API_KEY_RE.match(key):
            raise forms.ValidationError("After sk_sandbox_ come 16 to 64 letters or digits.")
        return key



def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """``t=<unix>,v1=<hex>[,v1=<hex>…]`` -> (timestamp, signatures); anything else is refused."""
    if not header or len(header) > 1000:
        raise WebhookRejected("Missing or oversized Sandbox-Signature header.")
    timestamp, signatures = None, []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookRejected("Malformed Sandbox-Signature header.")
        if name == "t":
            if timestamp is not None or not re.fullmatch(r"[0-9]{1,12}", value):
                raise WebhookRejected("Malformed timestamp in the Sandbox-Signature header.")
            timestamp = int(value)
        elif name == "v1":
            if not re.fullmatch(r"[0-9a-f]{64}", value):
                raise WebhookRejected("Malformed signature in the Sandbox-Signature header.")
            signatures.append(value)
        # other schemes (v0, future versions) are ignored, as Stripe's clients do
    if timestamp is None or not signatures:
        raise WebhookRejected("The Sandbox-Signature header needs t= and v1=.")
    return timestamp, signatures


def verify_signature(*, secret: str, header: str, body: bytes, now: float | None = None) -> None:
    timestamp, signatures = parse_signature_header(header)
    now = int(time.time() if now is None else now)
    if abs(now - timestamp) > TOLERANCE_SECONDS:  # both ways: replayed old events and clocks far ahead
        raise WebhookRejected(f"The signature timestamp is more than {TOLERANCE_SECONDS} seconds off.")
    expected = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise WebhookRejected("The signature does not match.")


def _field(obj: dict, name: str, kind: str) -> Any:
    value = obj.get(name)
    if kind == "id" and isinstance(value, str) and _EXTERNAL_ID_RE.match(value):
        return value
    if kind == "text" and isinstance(value, str) and len(value) <= 200:
        return value
    if kind == "amount" and isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if kind == "currency" and isinstance(value, str) and re.fullmatch(r"[A-Z]{3}", value):
        return value
    raise WebhookRejected(f"The event's object has no valid {name}.")


def event_from_payload(payload: Any) -> GatewayEvent:
    """Map a verified sandbox event to our words; a malformed one is refused."""
    if not isinstance(payload, dict):
        raise WebhookRejected("The event is not a JSON object.")
    event_id, kind = payload.get("id"), payload.get("type")
    obj = payload.get("data", {}).get("object") if isinstance(payload.get("data"), dict) else None
    if not isinstance(event_id, str) or not _EVENT_ID_RE.match(event_id) or not isinstance(kind, str) \
            or not isinstance(obj, dict):
        raise WebhookRejected("The event lacks an id, a type or data.object.")
    if kind in ("payment.succeeded", "payment.failed"):
        return GatewayEvent(event_id=event_id, kind=kind, payment_reference=_field(obj, "reference", "text"),
                            external_id=_field(obj, "id", "id"), amount=_field(obj, "amount", "amount"),
                            currency=_field(obj, "currency", "currency"), raw=payload)
    if kind == "refund.succeeded":
        return GatewayEvent(event_id=event_id, kind=kind, payment_reference=_field(obj, "reference", "text"),
                            external_id=_field(obj, "payment", "id"), refund_external_id=_field(obj, "id", "id"),
                            amount=_field(obj, "amount", "amount"), currency=_field(obj, "currency", "currency"),
                            raw=payload)
    return GatewayEvent(event_id=event_id, kind="ignored", raw=payload)  # answered 200, nothing to do


class SandboxPaymentPlugin(PaymentPlugin):
    slug = "sandbox"
    name = "Sandbox gateway"
    public_name = "Sandbox payment (test)"
    kind = PluginKind.PAYMENT
    version = "1.0"
    description = ("Take test payments through the sandbox gateway that ships with Kameng: a hosted page with "
                   "Pay and Fail buttons, signed webhooks and refunds. No real money moves.")
    settings_form = SandboxSettingsForm
    secret_fields = ("api_key",)

    @classmethod
    def unavailable_reason(cls, shop) -> str | None:
        if not sandbox_allowed():
            return "The sandbox gateway is switched off on this platform: it takes test payments only."
        return super().unavailable_reason(shop)

    # --- talking to the gateway --------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        return (self.settings.get("gateway_url") or default_gateway_url()).rstrip("/")

    def _api_key(self) -> str:
        key = self.secret("api_key")
        if not key:
            raise PaymentMisconfigured("The sandbox gateway is not set up: enter its API key in the shop console.")
        return key

    def _call(self, method: str, path: str, *, data: dict | None = None, idempotency_key: str = "") -> dict:
        headers = {"Authorization": f"Bearer {self._api_key()}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            status, raw = _http_call(method, f"{self.gateway_url}{path}", form=data, headers=headers,
                                     retry_safe=method == "GET" or bool(idempotency_key))
        except TimeoutError:
            raise PaymentError("The sandbox gateway did not answer in time. Try again in a moment.",
                               retryable=True) from None
        except OSError:
            raise PaymentError("The sandbox gateway is not reachable. Try again in a moment.", retryable=True) from None
        except ValueError:  # not a URL, or not an HTTP answer
            raise PaymentError("Could not talk to the sandbox gateway.", retryable=True) from None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if status == 401:
            raise PaymentMisconfigured("The sandbox gateway refused the shop's API key; check the sandbox settings.")
        if status >= 500 or not isinstance(body, dict):
            raise PaymentError("The sandbox gateway had a problem. Try again in a moment.", retryable=True)
        if status >= 400:
            message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
            raise PaymentError(f"The sandbox gateway refused: {message or f'HTTP {status}'}")
        return body

    # --- the PaymentPlugin interface ----------------------------------------------------
    def start(self, order, payment, *, return_url: str, notify_url: str) -> PaymentAction:
        body = self._call("POST", "/v1/payments", data={
            "amount": payment.amount, "currency": payment.currency, "reference": str(payment.pk),
            "description": f"Order {order.number}", "return_url": return_url, "notify_url": notify_url,
            # stable across retries of this payment; the order number keeps it unique if the
            # shop's database is ever reset while the gateway keeps its records
        }, idempotency_key=f"kameng-{payment.pk}-{order.number}")
        pay_url, external_id = body.get("pay_url"), body.get("id")
        if not isinstance(pay_url, str) or not isinstance(external_id, str) or body.get("amount") != payment.amount:
            raise PaymentError("The sandbox gateway sent an unexpected answer.", retryable=True)
        return PaymentAction(kind="redirect", url=pay_url, external_id=external_id)

    def handle_webhook(self, request) -> list[GatewayEvent]:
        body = request.body
        secret = webhook_secret_for(self._secret_or_reject())
        verify_signature(secret=secret, header=request.headers.get(SIGNATURE_HEADER, ""), body=body)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected("The body is not JSON.") from None
        return [event_from_payload(payload)]

    def _secret_or_reject(self) -> str:
        try:
            return self._api_key()
        except PaymentError:
            raise WebhookRejected("The sandbox provider has no API key, so no webhook can be verified.") from None

    def refund(self, payment, amount: int) -> RefundOutcome:
        if not payment.external_id:
            return RefundOutcome(succeeded=False, message="This payment never reached the sandbox gateway.")
        body = self._call("POST", f"/v1/payments/{payment.external_id}/refunds", data={"amount": amount},
                          # one key per refund step: a retry of the same step is answered, not repeated
                          idempotency_key=f"kameng-refund-{payment.external_id}-{payment.refunded_amount}-{amount}")
        if body.get("status") == "succeeded" and body.get("amount") == amount and isinstance(body.get("id"), str):
            return RefundOutcome(succeeded=True, external_id=body["id"])
        return RefundOutcome(succeeded=False, message="The sandbox gateway did not confirm the refund.")

    def fetch_status(self, payment) -> StatusOutcome:
        if not payment.external_id:
            return StatusOutcome(status="pending")
        body = self._call("GET", f"/v1/payments/{payment.external_id}")
        status = body.get("status") if body.get("status") in ("succeeded", "failed") else "pending"
        amount = body.get("amount") if isinstance(body.get("amount"), int) else 0
        return StatusOutcome(status=status, external_id=payment.external_id, amount=amount,
                             currency=str(body.get("currency") or ""))

    supports_settlement = True

    def settlement(self, day) -> list[SettlementLine]:
        body = self._call("GET", f"/v1/settlements?date={day.isoformat()}")
        lines = []
        for item in body.get("data") or []:
            if not isinstance(item, dict) or item.get("type") not in ("payment", "refund") \
                    or not isinstance(item.get("amount"), int) or not isinstance(item.get("id"), str):
                raise PaymentError("The sandbox gateway sent an unreadable settlement report.", retryable=True)
            lines.append(SettlementLine(kind=item["type"], external_id=item["id"],
                                        payment_external_id=str(item.get("payment") or item["id"]),
                                        reference=str(item.get("reference") or ""), amount=item["amount"],
                                        currency=str(item.get("currency") or "").upper()))
        return lines
