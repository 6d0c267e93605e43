"""A fake PayPal REST API: OAuth2 client credentials, Orders v2, captures, refunds and
webhook signature verification, checked as PayPal checks them.

* ``POST /v1/oauth2/token`` takes HTTP Basic ``client_id:secret`` and a form body
  ``grant_type=client_credentials``; tokens expire (``expire_tokens()``) and every other
  call needs a live ``Authorization: Bearer`` token or gets 401;
* JSON bodies only; ``PayPal-Request-Id`` makes creates, captures and refunds
  idempotent (the same id answers the first response again);
* events are signed like PayPal's: RSA-SHA256 (a fresh 2048-bit key per fake) over
  ``"{transmission id}|{time}|{webhook id}|{crc32 of the event}"``; the fake's
  ``/v1/notifications/verify-webhook-signature`` checks exactly that and answers
  ``SUCCESS`` or ``FAILURE``;
* the buyer: ``approve(order_id)`` (returns CHECKOUT.ORDER.APPROVED); the PayPal console:
  ``refund_in_console(order_id, value)`` (returns PAYMENT.CAPTURE.REFUNDED).
"""
from __future__ import annotations

import base64
import json
import secrets as random
import time
import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakegateways._server import FakeGateway, RecordedRequest, Reply, route, send_notification

CLIENT_ID = "AeFakeClientId_" + "c" * 40
CLIENT_SECRET = "EFakeSecret-" + "s" * 50
WEBHOOK_ID = "8PT597110X687430LKGECATA"
DECIMALS = {"JPY": 0, "HUF": 0, "TWD": 0}


def _pid(length: int = 17) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    return "".join(random.choice(alphabet) for _ in range(length))


def _error(status: int, name: str, issue: str = "", description: str = "") -> Reply:
    body = {"name": name, "message": description or name, "debug_id": random.token_hex(6)}
    if issue:
        body["details"] = [{"issue": issue, "description": description or issue}]
    return Reply(status, body)


def canonical(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


class FakePayPal(FakeGateway):
    name = "paypal"

    def __init__(self, *, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET,
                 webhook_id: str = WEBHOOK_ID, token_lifetime: int = 32400):
        super().__init__()
        self.client_id, self.client_secret, self.webhook_id = client_id, client_secret, webhook_id
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}  # token -> expiry
        self.orders: dict[str, dict] = {}
        self.captures: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.replies: dict[str, tuple[str, Reply]] = {}  # PayPal-Request-Id -> (path, first answer)
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.decline_captures = False  # True: the buyer's funding source refuses every capture
        # Transaction Search: refund -> the capture it refunds; how far the data reach (None:
        # now); a test lowers page_cap to see pages or spoils pages with report_mangler(page)
        self.refund_capture: dict[str, str] = {}
        self.refreshed_until: datetime | None = None
        self.page_cap = 500
        self.report_mangler = None
        self.search_allowed = True

    # --- checks ------------------------------------------------------------------------
    def _bearer(self, request: RecordedRequest) -> Reply | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if not token or self.tokens.get(token, 0) < time.time():
            return _error(401, "AUTHENTICATION_FAILURE", description="Authentication failed due to invalid "
                                                                     "authentication credentials or a missing "
                                                                     "Authorization header.")
        return None

    def _json(self, request: RecordedRequest) -> dict | Reply:
        if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", description="Content-Type must be application/json")
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            return _error(400, "INVALID_REQUEST", "MALFORMED_REQUEST_JSON")
        return body if isinstance(body, dict) else _error(400, "INVALID_REQUEST", "MALFORMED_REQUEST_JSON")

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = {token: 0 for token in self.tokens}

    def expire_token_soon(self) -> None:
        with self.lock:
            self.tokens = {token: time.time() - 1 for token in self.tokens}

    def _idempotent(self, request: RecordedRequest, handler) -> Reply:
        refusal = self._bearer(request)
        if refusal:
            return refusal
        body = self._json(request)
        if isinstance(body, Reply):
            return body
        request_id = request.headers.get("PayPal-Request-Id", "")
        if not request_id:
            return _error(400, "INVALID_REQUEST", "MISSING_REQUEST_ID",
                          "Kameng always sends a PayPal-Request-Id; this request had none.")
        if request_id in self.replies:
            path, reply = self.replies[request_id]
            if path == request.path:
                return reply
        reply = handler(body)
        if reply.status < 500:
            self.replies[request_id] = (request.path, reply)
        return reply

    # --- OAuth2 ------------------------------------------------------------------------
    @route("POST", r"/v1/oauth2/token")
    def token(self, request):
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization", "") != f"Basic {expected}":
            return Reply(401, {"error": "invalid_client", "error_description": "Client Authentication failed"})
        if request.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded" \
                or parse_qs(request.body.decode()) != {"grant_type": ["client_credentials"]}:
            return Reply(400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"})
        token = "A21AA" + random.token_urlsafe(40)
        self.tokens[token] = time.time() + self.token_lifetime
        return {"scope": "https://uri.paypal.com/services/payments/payment", "access_token": token,
                "token_type": "Bearer", "app_id": "APP-80W284485P519543T", "expires_in": self.token_lifetime,
                "nonce": random.token_hex(8)}

    # --- orders ------------------------------------------------------------------------
    @route("POST", r"/v2/checkout/orders")
    def create_order(self, request):
        return self._idempotent(request, self._create_order)

    def _create_order(self, body: dict) -> Reply:
        if body.get("intent") != "CAPTURE":
            return _error(422, "UNPROCESSABLE_ENTITY", "INTENT_INVALID")
        units = body.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1:
            return _error(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "purchase_units")
        amount = units[0].get("amount") or {}
        currency, value = amount.get("currency_code"), str(amount.get("value", ""))
        decimals = DECIMALS.get(currency, 2)
        whole, _, fraction = value.partition(".")
        if not whole.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) != decimals \
                or (decimals == 0 and "." in value):
            return _error(422, "UNPROCESSABLE_ENTITY", "DECIMAL_PRECISION",
                          f"{currency} takes {decimals} decimals")
        experience = body.get("payment_source", {}).get("paypal", {}).get("experience_context", {})
        if not str(experience.get("return_url", "")).startswith(("http://", "https://")):
            return _error(400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER", "return_url")
        order_id = _pid()
        order = {"id": order_id, "intent": "CAPTURE", "status": "PAYER_ACTION_REQUIRED",
                 "purchase_units": [{**units[0], "payments": {"captures": []}}],
                 "links": [{"href": f"{self.base_url}/v2/checkout/orders/{order_id}", "rel": "self", "method": "GET"},
                           {"href": f"{self.base_url}/checkoutnow?token={order_id}", "rel": "payer-action",
                            "method": "GET"}]}
        self.orders[order_id] = order
        return Reply(201, self._order_view(order, created=True))

    def _order_view(self, order: dict, created: bool = False) -> dict:
        view = json.loads(json.dumps(order))
        if created:
            view["purchase_units"][0].pop("payments")
        return view

    @route("GET", r"/v2/checkout/orders/(?P<order_id>[A-Z0-9]+)")
    def show_order(self, request, order_id):
        refusal = self._bearer(request)
        if refusal:
            return refusal
        order = self.orders.get(order_id)
        return self._order_view(order) if order else _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")

    @route("POST", r"/v2/checkout/orders/(?P<order_id>[A-Z0-9]+)/capture")
    def capture_order(self, request, order_id):
        return self._idempotent(request, lambda body: self._capture(order_id))

    def _capture(self, order_id: str) -> Reply:
        order = self.orders.get(order_id)
        if order is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
        if order["status"] == "COMPLETED":
            return _error(422, "UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED")
        if order["status"] != "APPROVED":
            return _error(422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED")
        if self.decline_captures:
            return _error(422, "UNPROCESSABLE_ENTITY", "INSTRUMENT_DECLINED",
                          "The instrument presented was either declined by the processor or bank, or it can't be "
                          "used for this payment.")
        unit = order["purchase_units"][0]
        capture = {"id": _pid(), "status": "COMPLETED", "amount": dict(unit["amount"]),
                   "custom_id": unit.get("custom_id"), "final_capture": True,
                   "supplementary_data": {"related_ids": {"order_id": order_id}}, "refunded": "0",
                   "create_time": datetime.now(timezone.utc).isoformat()}
        self.captures[capture["id"]] = capture
        unit["payments"]["captures"].append(capture)
        order["status"] = "COMPLETED"
        return Reply(201, self._order_view(order))

    @route("GET", r"/v2/payments/captures/(?P<capture_id>[A-Z0-9]+)")
    def show_capture(self, request, capture_id):
        refusal = self._bearer(request)
        if refusal:
            return refusal
        capture = self.captures.get(capture_id)
        return capture if capture else _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")

    @route("POST", r"/v2/payments/captures/(?P<capture_id>[A-Z0-9]+)/refund")
    def refund_capture(self, request, capture_id):
        return self._idempotent(request, lambda body: self._refund(capture_id, body))

    def _refund(self, capture_id: str, body: dict, *, custom_id: bool = True) -> Reply:
        capture = self.captures.get(capture_id)
        if capture is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
        currency = capture["amount"]["currency_code"]
        scale = 10 ** DECIMALS.get(currency, 2)
        total = int(Decimal(capture["amount"]["value"]) * scale)
        done = int(Decimal(capture["refunded"]) * scale)
        asked = body.get("amount") or {"value": str(Decimal(total - done) / scale), "currency_code": currency}
        if asked.get("currency_code") != currency:
            return _error(422, "UNPROCESSABLE_ENTITY", "REFUND_CURRENCY_MISMATCH")
        value = str(asked.get("value", ""))
        whole, _, fraction = value.partition(".")
        if not whole.isdigit() or len(fraction) != DECIMALS.get(currency, 2):
            return _error(422, "UNPROCESSABLE_ENTITY", "DECIMAL_PRECISION")
        minor = int(Decimal(value) * scale)
        if minor <= 0 or minor > total - done:
            return _error(422, "UNPROCESSABLE_ENTITY", "REFUND_AMOUNT_EXCEEDED")
        capture["refunded"] = str(Decimal(done + minor) / scale)
        capture["status"] = "REFUNDED" if done + minor == total else "PARTIALLY_REFUNDED"
        refund = {"id": _pid(), "status": "COMPLETED", "amount": {"currency_code": currency, "value": value},
                  "links": [{"href": f"{self.base_url}/v2/payments/refunds/x", "rel": "self", "method": "GET"},
                            {"href": f"{self.base_url}/v2/payments/captures/{capture_id}", "rel": "up",
                             "method": "GET"}]}
        if custom_id and body.get("custom_id"):
            refund["custom_id"] = body["custom_id"]
        refund["create_time"] = datetime.now(timezone.utc).isoformat()
        self.refunds[refund["id"]] = refund
        self.refund_capture[refund["id"]] = capture_id
        return Reply(201, refund)

    # --- Transaction Search ----------------------------------------------------------------
    @route("GET", r"/v1/reporting/transactions")
    def search_transactions(self, request):
        refusal = self._bearer(request)
        if refusal:
            return refusal
        if not self.search_allowed:
            return _error(403, "NOT_AUTHORIZED", description="Authorization failed due to insufficient permissions.")
        query = {name: values[-1] for name, values in request.query.items()}
        try:
            start = datetime.fromisoformat(query["start_date"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(query["end_date"].replace("Z", "+00:00"))
            page, size = int(query.get("page", "1")), int(query.get("page_size", "100"))
        except (KeyError, ValueError):
            return _error(400, "INVALID_REQUEST", "INVALID_REQUEST", "start_date and end_date are required (RFC3339)")
        if start.tzinfo is None or end <= start or end - start > timedelta(days=31) or not 1 <= size <= 500 \
                or page < 1:
            return _error(400, "INVALID_REQUEST", "INVALID_REQUEST", "Date range, page or page_size is invalid")

        def info(txn_id, code, amount, when, custom_id, reference=None):
            item = {"transaction_id": txn_id, "transaction_event_code": code, "transaction_status": "S",
                    "transaction_initiation_date": when, "transaction_updated_date": when,
                    "transaction_amount": amount, "protection_eligibility": "01"}
            if custom_id:
                item["custom_field"] = custom_id
            if reference:
                item.update(paypal_reference_id=reference, paypal_reference_id_type="TXN")
            return {"transaction_info": item, "payer_info": {"account_id": "FAKEPAYER01"}}

        rows = []
        for capture in self.captures.values():
            rows.append((capture["create_time"], info(capture["id"], "T0006", dict(capture["amount"]),
                                                      capture["create_time"], capture.get("custom_id"))))
        for refund_id, refund in self.refunds.items():
            amount = {**refund["amount"], "value": "-" + refund["amount"]["value"]}
            rows.append((refund["create_time"], info(refund_id, "T1107", amount, refund["create_time"],
                                                     refund.get("custom_id"), self.refund_capture[refund_id])))
        inside = [row for when, row in sorted(rows, key=lambda r: r[0]) if start <= datetime.fromisoformat(when) < end]
        size = min(size, self.page_cap)
        pages = (len(inside) + size - 1) // size
        refreshed = self.refreshed_until or datetime.now(timezone.utc)
        body = {"transaction_details": inside[(page - 1) * size: page * size], "account_number": "FAKEMERCHANT1",
                "start_date": query["start_date"], "end_date": query["end_date"],
                "last_refreshed_datetime": refreshed.strftime("%Y-%m-%dT%H:%M:%S+0000"), "page": page,
                "total_items": len(inside), "total_pages": pages, "links": []}
        return self.report_mangler(body) if self.report_mangler else body

    def backdate(self, days: int = 1) -> None:
        """Move every capture and refund so far ``days`` earlier."""
        def earlier(text: str) -> str:
            return (datetime.fromisoformat(text) - timedelta(days=days)).isoformat()
        with self.lock:
            for capture in self.captures.values():
                capture["create_time"] = earlier(capture["create_time"])
            for refund in self.refunds.values():
                refund["create_time"] = earlier(refund["create_time"])

    # --- webhook verification ------------------------------------------------------------
    @route("POST", r"/v1/notifications/verify-webhook-signature")
    def verify(self, request):
        refusal = self._bearer(request)
        if refusal:
            return refusal
        body = self._json(request)
        if isinstance(body, Reply):
            return body
        needed = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time", "webhook_id",
                  "webhook_event")
        if any(not body.get(name) for name in needed):
            return _error(400, "VALIDATION_ERROR", "MISSING_REQUIRED_PARAMETER")
        ok = (body["webhook_id"] == self.webhook_id and body["auth_algo"] == "SHA256withRSA"
              and body["cert_url"] == self.cert_url and self._signature_ok(body))
        return {"verification_status": "SUCCESS" if ok else "FAILURE"}

    @property
    def cert_url(self) -> str:
        return f"{self.base_url}/v1/notifications/certs/CERT-360caa42-fca2a594-fake"

    def _message(self, transmission_id: str, transmission_time: str, webhook_id: str, event: dict) -> bytes:
        return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(canonical(event))}".encode()

    def _signature_ok(self, body: dict) -> bool:
        try:
            signature = base64.b64decode(body["transmission_sig"], validate=True)
            self.private_key.public_key().verify(
                signature, self._message(body["transmission_id"], body["transmission_time"], body["webhook_id"],
                                         body["webhook_event"]), padding.PKCS1v15(), hashes.SHA256())
            return True
        except Exception:  # noqa: BLE001 - any failure is a FAILURE answer
            return False

    # --- the buyer, the console, events --------------------------------------------------
    def approve(self, order_id: str) -> dict:
        with self.lock:
            order = self.orders[order_id]
            if order["status"] == "PAYER_ACTION_REQUIRED":
                order["status"] = "APPROVED"
            return self.event("CHECKOUT.ORDER.APPROVED", "checkout-order", self._order_view(order))

    def capture_completed_event(self, order_id: str) -> dict:
        with self.lock:
            capture = self.orders[order_id]["purchase_units"][0]["payments"]["captures"][0]
            return self.event("PAYMENT.CAPTURE.COMPLETED", "capture", capture)

    def refund_in_console(self, order_id: str, value: str) -> dict:
        with self.lock:
            order = self.orders[order_id]
            capture = order["purchase_units"][0]["payments"]["captures"][0]
            reply = self._refund(capture["id"], {"amount": {"value": value,
                                                            "currency_code": capture["amount"]["currency_code"]}},
                                 custom_id=False)
            assert reply.status == 201, reply.body
            return self.event("PAYMENT.CAPTURE.REFUNDED", "refund", reply.body)

    def refund_event(self, refund_id: str) -> dict:
        with self.lock:
            return self.event("PAYMENT.CAPTURE.REFUNDED", "refund", self.refunds[refund_id])

    def event(self, kind: str, resource_type: str, resource: dict) -> dict:
        return {"id": f"WH-{_pid(17)}-{_pid(17)}", "event_version": "1.0", "resource_version": "2.0",
                "create_time": datetime.now(timezone.utc).isoformat(), "resource_type": resource_type,
                "event_type": kind, "summary": kind.lower(), "resource": json.loads(json.dumps(resource))}

    def signed(self, event: dict, *, when: datetime | None = None, key=None,
               webhook_id: str | None = None) -> tuple[bytes, dict[str, str]]:
        transmission_id = random.token_hex(8) + "-" + random.token_hex(4)
        stamp = (when or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = self._message(transmission_id, stamp, webhook_id or self.webhook_id, event)
        signature = (key or self.private_key).sign(message, padding.PKCS1v15(), hashes.SHA256())
        return canonical(event), {
            "Content-Type": "application/json", "PAYPAL-AUTH-ALGO": "SHA256withRSA", "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-TRANSMISSION-ID": transmission_id, "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-TRANSMISSION-TIME": stamp}

    def notify(self, url: str, event: dict, **options):
        body, headers = self.signed(event, **options)
        return send_notification(url, body, headers)
