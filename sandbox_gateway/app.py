"""The sandbox gateway as a WSGI application (stdlib only).

API (``Authorization: Bearer sk_sandbox_…``; form-encoded or JSON bodies):

    POST /v1/payments                     create a payment   (Idempotency-Key honoured)
    GET  /v1/payments/<id>                read it
    POST /v1/payments/<id>/refunds        refund all or part (Idempotency-Key honoured)
    GET  /v1/settlements?date=YYYY-MM-DD  what succeeded that UTC day (payments, refunds)
    POST /v1/test/replay/<event_id>       send a stored webhook again

Buyer-facing: ``GET /pay/<id>`` (hosted page) with forms posting to
``/pay/<id>/pay`` and ``/pay/<id>/fail``. See docs/payments-sandbox.md.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from sandbox_gateway import pages
from sandbox_gateway.signing import webhook_secret_for
from sandbox_gateway.store import Store, new_id, row_dict
from sandbox_gateway.webhooks import Deliverer

logger = logging.getLogger("sandbox_gateway")

API_KEY_RE = re.compile(r"^sk_sandbox_[A-Za-z0-9]{16,64}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
ID_RE = {"pay": re.compile(r"^pay_[0-9a-f]{24}$"), "evt": re.compile(r"^evt_[0-9a-f]{24}$")}
MAX_BODY = 64 * 1024
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f]")  # refused in text fields (a per-character loop cost 15 % of a create)
MAX_AMOUNT = 10**12  # minor units; far above anything a card shop sells, far below SQLite's limit
PAYMENT_FIELDS = {"amount", "currency", "reference", "notify_url", "return_url", "description"}
REFUND_FIELDS = {"amount", "reason"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str = ""):
        super().__init__(message)
        self.status, self.message, self.type, self.param = status, message, type, param


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers=None) -> Response:
        return cls(status, json.dumps(data, separators=(",", ":")).encode(), headers=list(headers or []))

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(303, b"", "text/plain", [("Location", location)])


class Request:
    def __init__(self, environ: dict):
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.path = environ.get("PATH_INFO", "/") or "/"
        self._body: bytes | None = None

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.environ.get("QUERY_STRING", ""), keep_blank_values=True))

    def header(self, name: str) -> str:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            return self.environ.get(key, "") or ""
        return self.environ.get(f"HTTP_{key}", "") or ""

    @property
    def body(self) -> bytes:
        if self._body is None:
            try:
                length = int(self.environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                raise ApiError(400, "Content-Length is not a number.") from None
            if length > MAX_BODY:
                raise ApiError(413, f"Request bodies are limited to {MAX_BODY} bytes.")
            self._body = self.environ["wsgi.input"].read(length) if length > 0 else b""
        return self._body

    def params(self) -> dict[str, Any]:
        """The body as a flat dict: JSON object or form-encoded."""
        raw = self.body
        if not raw:
            return {}
        if self.header("Content-Type").split(";")[0].strip().lower() == "application/json":
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, "The body is not valid JSON.") from None
            if not isinstance(data, dict):
                raise ApiError(400, "The JSON body must be an object.")
            return data
        try:
            pairs = form_pairs(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "The body is neither JSON nor form-encoded.") from None
        data: dict[str, Any] = {}
        for name, value in pairs:
            if name in data:
                raise ApiError(400, f"Parameter {name} is given more than once.", param=name)
            data[name] = value
        return data

    def base_url(self) -> str:
        scheme = self.environ.get("wsgi.url_scheme", "http")
        host = self.environ.get("HTTP_HOST") or f"{self.environ.get('SERVER_NAME')}:{self.environ.get('SERVER_PORT')}"
        return f"{scheme}://{host}"


def form_pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True, strict_parsing=True)``, unquoting only
    the fields that hold ``%`` or ``+`` (the standard library's loop was a third of the
    gateway's CPU per payment). A field without ``=`` is a ``ValueError``."""
    pairs = []
    for field in text.split("&"):
        name, equals, value = field.partition("=")
        if not equals:
            raise ValueError(f"bad query field: {field!r}")
        if "%" in field or "+" in field:
            name, value = unquote_plus(name, errors="replace"), unquote_plus(value, errors="replace")
        pairs.append((name, value))
    return pairs


# --- validation ----------------------------------------------------------------------

def _reject_unknown(params: dict, allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ApiError(400, f"Unknown parameter: {unknown[0]}.", param=unknown[0])


def _amount(value: Any, *, required: bool = True) -> int | None:
    if value is None or value == "":
        if required:
            raise ApiError(400, "Give the amount in minor units, e.g. 1050 for 10.50.", param="amount")
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isascii()
                                                                  and value.isdigit())):
        raise ApiError(400, "The amount must be a whole number of minor units, e.g. 1050 for 10.50.", param="amount")
    amount = int(value)
    if not 0 < amount <= MAX_AMOUNT:
        raise ApiError(400, f"The amount must be between 1 and {MAX_AMOUNT} minor units.", param="amount")
    return amount


def _text(params: dict, name: str, *, max_length: int, required: bool = False) -> str:
    value = params.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be text.", param=name)
    value = value.strip()
    if required and not value:
        raise ApiError(400, f"{name} is required.", param=name)
    if len(value) > max_length or CONTROL_CHARACTER.search(value):
        raise ApiError(400, f"{name} must be at most {max_length} printable characters.", param=name)
    return value


def _url(params: dict, name: str, *, required: bool) -> str:
    value = _text(params, name, max_length=2000, required=required)
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(400, f"{name} must be an absolute http(s) URL.", param=name)
    return value


def _fingerprint(path: str, values: dict) -> str:
    return hashlib.sha256(json.dumps({"path": path, "params": values}, sort_keys=True).encode()).hexdigest()


# --- representations -----------------------------------------------------------------

def payment_json(row) -> dict:
    return {
        "id": row["id"], "object": "payment", "status": row["status"], "amount": row["amount"],
        "amount_refunded": row["amount_refunded"], "currency": row["currency"], "reference": row["reference"],
        "description": row["description"], "pay_url": row["pay_url"], "return_url": row["return_url"],
        "created": row["created"], "succeeded_at": row["succeeded_at"], "failed_at": row["failed_at"],
    }


def refund_json(row, payment) -> dict:
    return {"id": row["id"], "object": "refund", "status": row["status"], "amount": row["amount"],
            "currency": row["currency"], "payment": payment["id"], "reference": payment["reference"],
            "reason": row["reason"], "created": row["created"]}


# --- the application -----------------------------------------------------------------

class GatewayApp:
    """``auto_register``: any well-formed ``sk_sandbox_…`` key creates its merchant on
    first use, like a test-mode account nobody has to sign up for. Off, only keys
    added with :meth:`add_merchant` are accepted (unknown keys get 401)."""

    def __init__(self, store: Store, deliverer: Deliverer | None = None, *, public_url: str = "",
                 auto_register: bool = True):
        self.store = store
        self.deliverer = deliverer or Deliverer(store)
        self.public_url = public_url.rstrip("/")
        self.auto_register = auto_register
        self.routes = [
            ("POST", re.compile(r"^/v1/payments$"), self.create_payment),
            ("GET", re.compile(r"^/v1/payments/(?P<payment_id>[^/]+)$"), self.get_payment),
            ("POST", re.compile(r"^/v1/payments/(?P<payment_id>[^/]+)/refunds$"), self.create_refund),
            ("GET", re.compile(r"^/v1/settlements$"), self.settlements),
            ("POST", re.compile(r"^/v1/test/replay/(?P<event_id>[^/]+)$"), self.replay),
            ("GET", re.compile(r"^/pay/(?P<payment_id>[^/]+)/?$"), self.pay_page),
            ("POST", re.compile(r"^/pay/(?P<payment_id>[^/]+)/(?P<outcome>pay|fail)$"), self.pay_action),
            ("GET", re.compile(r"^/(healthz)?$"), self.health),
        ]

    def add_merchant(self, api_key: str) -> str:
        if not API_KEY_RE.match(api_key):
            raise ValueError("API keys look like sk_sandbox_ followed by 16 to 64 letters or digits")
        return self.store.merchant_create(api_key, webhook_secret_for(api_key))["id"]

    def close(self) -> None:
        self.deliverer.close()
        self.store.close()

    # --- WSGI ------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except ApiError as exc:
            if request.path.startswith("/pay/") and exc.status == 404:
                response = Response.html(pages.not_found_page(), 404)
            else:
                error = {"type": exc.type, "message": exc.message}
                if exc.param:
                    error["param"] = exc.param
                headers = [("WWW-Authenticate", "Bearer")] if exc.status == 401 else []
                response = Response.json({"error": error}, exc.status, headers)
        except Exception:  # noqa: BLE001 - answer 500 in the API's format, log the cause
            logger.exception("sandbox gateway: %s %s failed", request.method, request.path)
            response = Response.json({"error": {"type": "api_error", "message": "Internal error."}}, 500)
        status = f"{response.status} {HTTPStatus(response.status).phrase}"
        headers = [("Content-Type", response.content_type), ("Content-Length", str(len(response.body))),
                   ("Cache-Control", "no-store"), *response.headers]
        start_response(status, headers)
        return [response.body]

    def dispatch(self, request: Request) -> Response:
        allowed = []
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match:
                if method == request.method:
                    return handler(request, **match.groupdict())
                allowed.append(method)
        if allowed:
            raise ApiError(405, f"Use {' or '.join(allowed)} here.")
        raise ApiError(404, "Not found.", type="not_found")

    def health(self, request: Request, **_) -> Response:
        return Response.json({"service": "kameng-sandbox-gateway", "ok": True})

    # --- auth ------------------------------------------------------------------------
    def merchant(self, request: Request):
        header = request.header("Authorization")
        if not header:
            raise ApiError(401, "Give your API key: Authorization: Bearer sk_sandbox_…", type="authentication_error")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not API_KEY_RE.match(key):
            raise ApiError(401, "Invalid API key.", type="authentication_error")
        merchant = self.store.merchant_by_key(key)
        if merchant is None and self.auto_register:
            merchant = self.store.merchant_create(key, webhook_secret_for(key))
        if merchant is None:
            raise ApiError(401, "Invalid API key.", type="authentication_error")
        return merchant

    @staticmethod
    def idempotency_key(request: Request) -> str:
        key = request.header("Idempotency-Key")
        if key and not IDEMPOTENCY_KEY_RE.match(key):
            raise ApiError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters.")
        return key

    def _idempotent(self, merchant, request: Request, fingerprint: str, work) -> Response:
        """Run ``work(db)`` -> (status, body) once per Idempotency-Key: the same key with the
        same parameters returns the stored answer, with other parameters it is a 409."""
        key = self.idempotency_key(request)
        with self.store.transaction() as db:
            if key:
                previous = self.store.idempotent_answer(db, merchant["id"], key)
                if previous is not None:
                    if previous["fingerprint"] != fingerprint:
                        raise ApiError(409, "This Idempotency-Key was used with other parameters.",
                                       type="idempotency_error")
                    return Response(previous["status"], previous["body"].encode(),
                                    headers=[("Idempotent-Replayed", "true")])
            status, body, after = work(db)
            encoded = json.dumps(body, separators=(",", ":"))
            if key:
                self.store.idempotent_remember(db, merchant["id"], key, fingerprint, status, encoded)
        if after:
            after()
        return Response(status, encoded.encode())

    # --- payments --------------------------------------------------------------------
    def create_payment(self, request: Request) -> Response:
        merchant = self.merchant(request)
        params = request.params()
        _reject_unknown(params, PAYMENT_FIELDS)
        amount = _amount(params.get("amount"))
        currency = params.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise ApiError(400, "currency must be a three-letter ISO code such as CNY.", param="currency")
        values = {
            "amount": amount, "currency": currency.upper(),
            "reference": _text(params, "reference", max_length=200, required=True),
            "description": _text(params, "description", max_length=500),
            "notify_url": _url(params, "notify_url", required=True),
            "return_url": _url(params, "return_url", required=False),
        }

        def work(db):
            payment_id = new_id("pay")
            pay_url = f"{self.public_url or request.base_url()}/pay/{payment_id}"
            created = self.store.now()
            db.execute("INSERT INTO payments (id, merchant_id, amount, currency, reference, description, notify_url, "
                       "return_url, pay_url, status, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                       (payment_id, merchant["id"], values["amount"], values["currency"], values["reference"],
                        values["description"], values["notify_url"], values["return_url"], pay_url, created))
            # the row as written, without reading it back
            return 200, payment_json({**values, "id": payment_id, "pay_url": pay_url, "status": "pending",
                                      "amount_refunded": 0, "created": created, "succeeded_at": None,
                                      "failed_at": None}), None

        return self._idempotent(merchant, request, _fingerprint(request.path, values), work)

    def _merchant_payment(self, merchant, payment_id: str):
        payment = self.store.payment(payment_id, merchant["id"]) if ID_RE["pay"].match(payment_id) else None
        if payment is None:
            raise ApiError(404, f"No payment {payment_id}.", type="not_found", param="id")
        return payment

    def get_payment(self, request: Request, payment_id: str) -> Response:
        return Response.json(payment_json(self._merchant_payment(self.merchant(request), payment_id)))

    # --- refunds ---------------------------------------------------------------------
    def create_refund(self, request: Request, payment_id: str) -> Response:
        merchant = self.merchant(request)
        self._merchant_payment(merchant, payment_id)
        params = request.params()
        _reject_unknown(params, REFUND_FIELDS)
        values = {"amount": _amount(params.get("amount"), required=False),
                  "reason": _text(params, "reason", max_length=200)}

        def work(db):
            payment = db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
            if payment["status"] != "succeeded":
                raise ApiError(400, f"Only succeeded payments can be refunded; this one is {payment['status']}.")
            remaining = payment["amount"] - payment["amount_refunded"]
            amount = remaining if values["amount"] is None else values["amount"]
            if remaining <= 0:
                raise ApiError(400, "This payment is already fully refunded.", param="amount")
            if amount > remaining:
                raise ApiError(400, f"The amount exceeds the {remaining} minor units left to refund.", param="amount")
            refund_id, now = new_id("re"), self.store.now()
            db.execute("INSERT INTO refunds (id, payment_id, merchant_id, amount, currency, reason, status, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, 'succeeded', ?)",
                       (refund_id, payment_id, merchant["id"], amount, payment["currency"], values["reason"], now))
            db.execute("UPDATE payments SET amount_refunded = amount_refunded + ? WHERE id = ?", (amount, payment_id))
            refund = db.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
            body = refund_json(refund, payment)
            event_id = self._event(db, merchant["id"], "refund.succeeded", body, payment["notify_url"])
            # the shop is inside its refund transaction until we answer: deliver afterwards
            return 200, body, lambda: self.deliverer.deliver_later(event_id)

        return self._idempotent(merchant, request, _fingerprint(request.path, values), work)

    # --- events ----------------------------------------------------------------------
    def _event(self, db, merchant_id: str, type: str, obj: dict, notify_url: str) -> str:
        event_id = new_id("evt")
        body = json.dumps({"id": event_id, "type": type, "created": self.store.now(), "data": {"object": obj}},
                          separators=(",", ":"))
        self.store.event_add(db, event_id=event_id, merchant_id=merchant_id, type=type, body=body,
                             notify_url=notify_url)
        return event_id

    def replay(self, request: Request, event_id: str) -> Response:
        merchant = self.merchant(request)
        event = self.store.event(event_id) if ID_RE["evt"].match(event_id) else None
        if event is None or event["merchant_id"] != merchant["id"]:
            raise ApiError(404, f"No event {event_id}.", type="not_found")
        result = self.deliverer.attempt(event_id)
        return Response.json({"id": event_id, "delivered": result.delivered, "status": result.status,
                              "error": result.error})

    # --- settlements -----------------------------------------------------------------
    def settlements(self, request: Request) -> Response:
        merchant = self.merchant(request)
        text = request.query.get("date", "")
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                raise ValueError
            day = date.fromisoformat(text)
        except ValueError:
            raise ApiError(400, "Give the day as date=YYYY-MM-DD (UTC).", param="date") from None
        start = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())
        payments, refunds = self.store.settlement(merchant["id"], start, start + 86400)
        items, totals = [], {}
        for row in payments:
            items.append({"type": "payment", "id": row["id"], "payment": row["id"], "reference": row["reference"],
                          "amount": row["amount"], "currency": row["currency"], "at": row["succeeded_at"]})
            totals.setdefault(row["currency"], {"payments": 0, "refunds": 0})["payments"] += row["amount"]
        for row in refunds:
            items.append({"type": "refund", "id": row["id"], "payment": row["payment_id"],
                          "reference": row["reference"], "amount": row["amount"], "currency": row["currency"],
                          "at": row["created"]})
            totals.setdefault(row["currency"], {"payments": 0, "refunds": 0})["refunds"] += row["amount"]
        for figures in totals.values():
            figures["net"] = figures["payments"] - figures["refunds"]
        items.sort(key=lambda item: (item["at"], item["id"]))
        return Response.json({"object": "settlement", "date": text, "data": items, "totals": totals})

    # --- hosted pay page -------------------------------------------------------------
    def _public_payment(self, payment_id: str):
        payment = self.store.payment(payment_id) if ID_RE["pay"].match(payment_id) else None
        if payment is None:
            raise ApiError(404, "No such payment.", type="not_found")
        return payment

    def pay_page(self, request: Request, payment_id: str) -> Response:
        return Response.html(pages.pay_page(row_dict(self._public_payment(payment_id))))

    def pay_action(self, request: Request, payment_id: str, outcome: str) -> Response:
        self._public_payment(payment_id)
        event_id = None
        with self.store.transaction() as db:
            payment = db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
            if payment["status"] == "pending":  # a second click changes nothing and sends nothing
                now = self.store.now()
                if outcome == "pay":
                    db.execute("UPDATE payments SET status = 'succeeded', succeeded_at = ? WHERE id = ?", (now, payment_id))
                else:
                    db.execute("UPDATE payments SET status = 'failed', failed_at = ? WHERE id = ?", (now, payment_id))
                payment = db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
                kind = "payment.succeeded" if outcome == "pay" else "payment.failed"
                event_id = self._event(db, payment["merchant_id"], kind, payment_json(payment), payment["notify_url"])
        if event_id:
            # synchronously: the order is paid by the time the buyer lands on the shop
            self.deliverer.deliver_now(event_id)
        return Response.redirect(payment["return_url"] or f"/pay/{payment_id}")
