"""A fake Stripe: the parts of the REST API Kameng uses, checked as Stripe checks them.

* ``Authorization: Bearer <secret key>`` or 401 (with Stripe's masked-key message);
* POST bodies must be ``application/x-www-form-urlencoded`` (nested ``a[b][0]`` names);
* ``Idempotency-Key``: the same key with the same body answers the first response
  again; the same key with another body is a 400 ``idempotency_error``; POSTs without
  a key are refused here (``require_idempotency_key``) because Kameng always sends one;
* Checkout Sessions, PaymentIntents, charges, refunds and balance, in memory;
* signed events: ``event(type, obj)`` builds one, ``sign(body)`` makes the
  ``Stripe-Signature`` header (several secrets -> several v1 signatures, as while a
  secret is rolled), ``notify(url, event)`` POSTs it for real.

The buyer's side: ``pay(session_id)`` completes a Checkout Session (returns the events
Stripe would send), ``decline(session_id)`` fails an attempt.

Saved cards (platform billing): Customers (create, update
``invoice_settings[default_payment_method]``, read); a Checkout Session on a
``customer`` with ``payment_intent_data[setup_future_usage]`` attaches the card paid
with to that Customer (``pay(session_id, last4=, brand=)``); PaymentMethods (read);
PaymentIntents created with ``confirm=true`` + ``off_session=true`` charge a saved card
at once: succeeded, or a 402 ``card_error`` after ``card_refuses(pm_id, code)``
(``card_declined``, ``insufficient_funds``, ``authentication_required``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets as random
import time
from urllib.parse import parse_qsl

from tests.fakegateways._server import FakeGateway, RecordedRequest, Reply, route, send_notification

API_KEY = "sk_test_" + "51Fake" + "Q" * 40
WEBHOOK_SECRET = "whsec_" + "FakeSigningSecret" + "Z" * 20


def _id(prefix: str) -> str:
    return f"{prefix}_test_{random.token_hex(12)}" if prefix == "cs" else f"{prefix}_{random.token_hex(12)}"


def parse_form(body: bytes) -> dict:
    """``a[b][c]=1`` -> ``{"a": {"b": {"c": "1"}}}`` (list indices stay string keys)."""
    out: dict = {}
    for name, value in parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body)):
        parts = name.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"conflicting parameter {name}")
        node[parts[-1]] = value
    return out


def _error(status: int, message: str, kind: str = "invalid_request_error", code: str = "") -> Reply:
    return Reply(status, {"error": {"type": kind, "message": message, **({"code": code} if code else {})}})


class FakeStripe(FakeGateway):
    name = "stripe"
    require_idempotency_key = True

    def __init__(self, *, api_key: str = API_KEY, webhook_secret: str = WEBHOOK_SECRET):
        super().__init__()
        self.api_key, self.webhook_secret = api_key, webhook_secret
        self.sessions: dict[str, dict] = {}
        self.intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.idempotency: dict[str, tuple[bytes, str, Reply]] = {}
        self.customers: dict[str, dict] = {}
        self.payment_methods: dict[str, dict] = {}
        self.embed_refunds = True  # False: charges come without their refund list (newer API versions)
        self.charge_metadata = True  # False: charges without the PaymentIntent's metadata
        # the balance: one transaction per charge and per refund, newest listed first
        self.balance_transactions: list[dict] = []
        self.page_cap = 100  # Stripe's largest page; a test lowers it to see pagination
        self.report_mangler = None  # a test spoils list pages with it: fn(page) -> page

    # --- request checks -----------------------------------------------------------------
    def _authorised(self, request: RecordedRequest) -> Reply | None:
        header = request.headers.get("Authorization", "")
        if header != f"Bearer {self.api_key}":
            shown = header.removeprefix("Bearer ")
            return _error(401, f"Invalid API Key provided: {shown[:8]}{'*' * 8}{shown[-4:]}")
        return None

    def _post(self, request: RecordedRequest, handler) -> Reply:
        refusal = self._authorised(request)
        if refusal:
            return refusal
        if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return _error(400, "Stripe takes form-encoded bodies.")
        key = request.headers.get("Idempotency-Key", "")
        if not key and self.require_idempotency_key:
            return _error(400, "Kameng always sends an Idempotency-Key; this request had none.")
        fingerprint = request.body
        if key and key in self.idempotency:
            body, path, reply = self.idempotency[key]
            if body != fingerprint or path != request.path:
                return _error(400, "Keys for idempotent requests can only be used with the same parameters they "
                                   "were first used with.", kind="idempotency_error")
            return Reply(reply.status, reply.body, {**reply.headers, "Idempotent-Replayed": "true"})
        try:
            form = parse_form(request.body)
        except ValueError as exc:
            return _error(400, f"Malformed form body: {exc}")
        reply = handler(form)
        if key and reply.status < 500:
            self.idempotency[key] = (fingerprint, request.path, reply)
        return reply

    # --- checkout sessions --------------------------------------------------------------
    @route("POST", r"/v1/checkout/sessions")
    def create_session(self, request):
        return self._post(request, self._create_session)

    def _create_session(self, form: dict) -> Reply:
        if form.get("mode") != "payment":
            return _error(400, "mode must be payment")
        for name in ("success_url", "cancel_url"):
            if not str(form.get(name, "")).startswith(("http://", "https://")):
                return _error(400, f"Not a valid URL: {name}")
        try:
            item = form["line_items"]["0"]
            price = item["price_data"]
            amount, quantity, currency = int(price["unit_amount"]), int(item["quantity"]), price["currency"]
            name = price["product_data"]["name"]
        except (KeyError, TypeError, ValueError):
            return _error(400, "line_items[0] needs quantity and price_data[currency, unit_amount, product_data]")
        if amount <= 0 or quantity != 1 or currency != currency.lower() or len(currency) != 3 or not name:
            return _error(400, "Invalid line item")
        customer = form.get("customer")
        if customer is not None and customer not in self.customers:
            return _error(400, f"No such customer: '{customer}'", code="resource_missing")
        setup = form.get("payment_intent_data", {}).get("setup_future_usage")
        if setup not in (None, "on_session", "off_session"):
            return _error(400, "Invalid setup_future_usage")
        session_id = _id("cs")
        session = {
            "id": session_id, "object": "checkout.session", "mode": "payment", "status": "open",
            "payment_status": "unpaid", "payment_intent": None, "amount_total": amount * quantity,
            "currency": currency, "client_reference_id": form.get("client_reference_id"),
            "metadata": form.get("metadata", {}), "success_url": form["success_url"],
            "cancel_url": form["cancel_url"], "url": f"{self.base_url}/c/pay/{session_id}", "livemode": False,
            "_intent_metadata": form.get("payment_intent_data", {}).get("metadata", {}), "_name": name,
            "customer": customer, "_setup_future_usage": setup,
        }
        self.sessions[session_id] = session
        return Reply(200, self._public(session))

    @staticmethod
    def _public(obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    @route("GET", r"/v1/checkout/sessions/(?P<session_id>[^/]+)")
    def show_session(self, request, session_id):
        refusal = self._authorised(request)
        if refusal:
            return refusal
        session = self.sessions.get(session_id)
        if session is None:
            return _error(404, f"No such checkout.session: '{session_id}'", code="resource_missing")
        return self._public(session)

    @route("GET", r"/v1/checkout/sessions")
    def list_sessions(self, request):
        refusal = self._authorised(request)
        if refusal:
            return refusal
        intent = request.query.get("payment_intent", [""])[0]
        found = [self._public(s) for s in self.sessions.values() if intent and s["payment_intent"] == intent]
        return {"object": "list", "data": found, "has_more": False}

    # --- refunds -----------------------------------------------------------------------
    @route("POST", r"/v1/refunds")
    def create_refund(self, request):
        return self._post(request, self._create_refund)

    def _create_refund(self, form: dict) -> Reply:
        intent = self.intents.get(form.get("payment_intent", ""))
        if intent is None or intent["status"] != "succeeded":
            return _error(400, "No such payment_intent or it has not succeeded", code="resource_missing")
        charge = self.charges[intent["latest_charge"]]
        left = charge["amount"] - charge["amount_refunded"]
        try:
            amount = int(form.get("amount", left))
        except ValueError:
            return _error(400, "Invalid integer: amount")
        if left <= 0:
            return _error(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        if amount <= 0 or amount > left:
            return _error(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                          code="amount_too_large")
        refund = self._refund(charge, amount, metadata=form.get("metadata", {}))
        return Reply(200, refund)

    def _refund(self, charge: dict, amount: int, metadata: dict | None = None) -> dict:
        refund = {"id": _id("re"), "object": "refund", "amount": amount, "currency": charge["currency"],
                  "charge": charge["id"], "payment_intent": charge["payment_intent"], "status": "succeeded",
                  "metadata": metadata or {}}
        self.refunds[refund["id"]] = refund
        self._balance_transaction("refund", refund["id"], -amount, charge["currency"])
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        return refund

    @route("GET", r"/v1/refunds")
    def list_refunds(self, request):
        refusal = self._authorised(request)
        if refusal:
            return refusal
        intent = request.query.get("payment_intent", [""])[0]
        return {"object": "list", "has_more": False,
                "data": [r for r in self.refunds.values() if intent and r["payment_intent"] == intent]}

    # --- balance transactions (reconciliation) ----------------------------------------
    def _balance_transaction(self, kind: str, source: str, amount: int, currency: str) -> dict:
        txn = {"id": _id("txn"), "object": "balance_transaction", "type": kind, "source": source,
               "amount": amount, "currency": currency, "fee": 0, "net": amount, "status": "pending",
               "created": int(time.time()), "reporting_category": kind}
        self.balance_transactions.append(txn)
        return txn

    def backdate(self, source_id: str, created: int) -> None:
        """Move the balance transaction of a charge or refund to another time."""
        with self.lock:
            for txn in self.balance_transactions:
                if txn["source"] == source_id:
                    txn["created"] = created

    def _expanded_source(self, source_id: str, expand: set[str]) -> str | dict:
        if "data.source" not in expand and "data.source.payment_intent" not in expand:
            return source_id
        obj = dict(self.charges.get(source_id) or self.refunds[source_id])
        if not self.charge_metadata and obj["object"] == "charge":
            obj["metadata"] = {}
        if "data.source.payment_intent" in expand and obj.get("payment_intent"):
            obj["payment_intent"] = dict(self.intents[obj["payment_intent"]])
        return json.loads(json.dumps(obj))

    @route("GET", r"/v1/balance_transactions")
    def list_balance_transactions(self, request):
        refusal = self._authorised(request)
        if refusal:
            return refusal
        query = request.query
        allowed = {"created[gte]", "created[lt]", "created[gt]", "created[lte]", "limit", "starting_after",
                   "expand[]", "type"}
        unknown = set(query) - allowed
        if unknown:
            return _error(400, f"Received unknown parameter: {sorted(unknown)[0]}")
        try:
            bounds = {name: int(query[name][0]) for name in ("created[gte]", "created[lt]", "created[gt]",
                                                              "created[lte]") if name in query}
            limit = int(query.get("limit", ["10"])[0])
        except ValueError:
            return _error(400, "Invalid integer")
        if not 1 <= limit <= 100:
            return _error(400, "limit must be between 1 and 100")
        expand = set(query.get("expand[]", []))
        if expand - {"data.source", "data.source.payment_intent"}:
            return _error(400, f"This property cannot be expanded ({sorted(expand)[0]}).")
        kind = query.get("type", [""])[0]
        rows = [t for t in reversed(self.balance_transactions)
                if (not kind or t["type"] == kind)
                and ("created[gte]" not in bounds or t["created"] >= bounds["created[gte]"])
                and ("created[gt]" not in bounds or t["created"] > bounds["created[gt]"])
                and ("created[lt]" not in bounds or t["created"] < bounds["created[lt]"])
                and ("created[lte]" not in bounds or t["created"] <= bounds["created[lte]"])]
        rows.sort(key=lambda t: -t["created"])  # newest first, ties in reverse order of creation
        after = query.get("starting_after", [""])[0]
        if after:
            ids = [t["id"] for t in rows]
            if after not in ids:
                return _error(400, f"No such balance_transaction: '{after}'", code="resource_missing")
            rows = rows[ids.index(after) + 1:]
        page = rows[:min(limit, self.page_cap)]
        body = {"object": "list", "url": "/v1/balance_transactions", "has_more": len(rows) > len(page),
                "data": [{**t, "source": self._expanded_source(t["source"], expand)} for t in page]}
        return self.report_mangler(body) if self.report_mangler else body

    @route("GET", r"/v1/balance")
    def balance(self, request):
        refusal = self._authorised(request)
        if refusal:
            return refusal
        paid = sum(c["amount"] - c["amount_refunded"] for c in self.charges.values())
        return {"object": "balance", "livemode": False, "available": [{"amount": paid, "currency": "cny"}]}

    # --- the buyer and the dashboard ----------------------------------------------------
    def pay_later(self, session_id: str) -> dict:
        """The buyer chooses a delayed method (a bank debit): the session completes
        unpaid; ``pay()`` later settles it. Returns checkout.session.completed."""
        with self.lock:
            session = self.sessions[session_id]
            session.update(status="complete", payment_status="unpaid")
            return self.event("checkout.session.completed", self._public(session))

    def pay(self, session_id: str, *, asynchronous: bool = False, last4: str = "4242",
            brand: str = "visa") -> list[dict]:
        """The buyer pays on the hosted page: PaymentIntent + charge, the session paid.
        Returns the events Stripe would send (session completed, intent succeeded;
        ``asynchronous``: checkout.session.async_payment_succeeded instead). A session
        on a Customer with ``setup_future_usage`` attaches the card to the Customer."""
        with self.lock:
            session = self.sessions[session_id]
            intent_id, charge_id = _id("pi"), _id("ch")
            metadata = dict(session["_intent_metadata"])
            method = self._payment_method(last4, brand)
            if session.get("customer") and session.get("_setup_future_usage"):
                method["customer"] = session["customer"]
            self.intents[intent_id] = {"id": intent_id, "object": "payment_intent", "status": "succeeded",
                                       "amount": session["amount_total"], "amount_received": session["amount_total"],
                                       "currency": session["currency"], "metadata": metadata,
                                       "latest_charge": charge_id, "livemode": False,
                                       "customer": session.get("customer"), "payment_method": method["id"],
                                       "setup_future_usage": session.get("_setup_future_usage")}
            self.charges[charge_id] = {"id": charge_id, "object": "charge", "amount": session["amount_total"],
                                       "amount_refunded": 0, "refunded": False, "currency": session["currency"],
                                       "payment_intent": intent_id, "paid": True, "status": "succeeded",
                                       "metadata": metadata}
            session.update(status="complete", payment_status="paid", payment_intent=intent_id)
            self._balance_transaction("charge", charge_id, session["amount_total"], session["currency"])
            kind = "checkout.session.async_payment_succeeded" if asynchronous else "checkout.session.completed"
            return [self.event(kind, self._public(session)),
                    self.event("payment_intent.succeeded", self.intents[intent_id])]

    def decline(self, session_id: str) -> dict:
        """A card is declined on the hosted page (the buyer may try another)."""
        with self.lock:
            session = self.sessions[session_id]
            intent_id = _id("pi")
            intent = {"id": intent_id, "object": "payment_intent", "status": "requires_payment_method",
                      "amount": session["amount_total"], "amount_received": 0, "currency": session["currency"],
                      "metadata": dict(session["_intent_metadata"]),
                      "last_payment_error": {"type": "card_error", "code": "card_declined"}}
            self.intents[intent_id] = intent
            return self.event("payment_intent.payment_failed", intent)

    def refund_in_dashboard(self, session_id: str, amount: int) -> dict:
        """The shop owner refunds in the Stripe Dashboard: returns the charge.refunded event."""
        with self.lock:
            charge = self.charge_of(session_id)
            self._refund(charge, amount)
            return self.charge_refunded_event(session_id)

    def charge_elsewhere(self, amount: int, currency: str = "cny") -> dict:
        """Another integration on the same Stripe account takes a payment (no Checkout
        Session, no Kameng metadata): it is in the balance but not Kameng's."""
        with self.lock:
            intent_id, charge_id = _id("pi"), _id("ch")
            self.intents[intent_id] = {"id": intent_id, "object": "payment_intent", "status": "succeeded",
                                       "amount": amount, "amount_received": amount, "currency": currency,
                                       "metadata": {}, "latest_charge": charge_id, "livemode": False}
            self.charges[charge_id] = {"id": charge_id, "object": "charge", "amount": amount, "amount_refunded": 0,
                                       "refunded": False, "currency": currency, "payment_intent": intent_id,
                                       "paid": True, "status": "succeeded", "metadata": {}}
            self._balance_transaction("charge", charge_id, amount, currency)
            return self.charges[charge_id]

    def charge_of(self, session_id: str) -> dict:
        return self.charges[self.intents[self.sessions[session_id]["payment_intent"]]["latest_charge"]]

    def charge_refunded_event(self, session_id: str) -> dict:
        with self.lock:
            charge = dict(self.charge_of(session_id))
            if self.embed_refunds:
                mine = [r for r in self.refunds.values() if r["charge"] == charge["id"]]
                charge["refunds"] = {"object": "list", "data": mine, "has_more": False}
            if not self.charge_metadata:
                charge["metadata"] = {}
            return self.event("charge.refunded", charge)

    # --- customers, saved cards and off-session charges ---------------------------------
    def _payment_method(self, last4: str, brand: str) -> dict:
        method = {"id": _id("pm"), "object": "payment_method", "type": "card", "customer": None,
                  "card": {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2030}, "_refuses": ""}
        self.payment_methods[method["id"]] = method
        return method

    def card_refuses(self, payment_method_id: str, code: str = "card_declined") -> None:
        """From now on the bank refuses off-session charges to this card with ``code``
        (``""``: accepts again)."""
        with self.lock:
            self.payment_methods[payment_method_id]["_refuses"] = code

    @route("POST", r"/v1/customers")
    def create_customer(self, request):
        return self._post(request, self._create_customer)

    def _create_customer(self, form: dict) -> Reply:
        customer = {"id": _id("cus"), "object": "customer", "name": form.get("name"),
                    "metadata": form.get("metadata", {}), "invoice_settings": {"default_payment_method": None},
                    "livemode": False}
        self.customers[customer["id"]] = customer
        return Reply(200, customer)

    @route("POST", r"/v1/customers/(?P<customer_id>[^/]+)")
    def update_customer(self, request, customer_id):
        return self._post(request, lambda form: self._update_customer(customer_id, form))

    def _update_customer(self, customer_id: str, form: dict) -> Reply:
        customer = self.customers.get(customer_id)
        if customer is None:
            return _error(404, f"No such customer: '{customer_id}'", code="resource_missing")
        default = form.get("invoice_settings", {}).get("default_payment_method")
        if default is not None:
            method = self.payment_methods.get(default)
            if method is None or method["customer"] != customer_id:
                return _error(400, f"The payment method {default} is not attached to this customer.")
            customer["invoice_settings"]["default_payment_method"] = default
        return Reply(200, customer)

    @route("GET", r"/v1/customers/(?P<customer_id>[^/]+)")
    def show_customer(self, request, customer_id):
        refusal = self._authorised(request)
        if refusal:
            return refusal
        customer = self.customers.get(customer_id)
        if customer is None:
            return _error(404, f"No such customer: '{customer_id}'", code="resource_missing")
        return customer

    @route("GET", r"/v1/payment_methods/(?P<method_id>[^/]+)")
    def show_payment_method(self, request, method_id):
        refusal = self._authorised(request)
        if refusal:
            return refusal
        method = self.payment_methods.get(method_id)
        if method is None:
            return _error(404, f"No such PaymentMethod: '{method_id}'", code="resource_missing")
        return self._public(method)

    @route("GET", r"/v1/payment_intents/(?P<intent_id>[^/]+)")
    def show_intent(self, request, intent_id):
        refusal = self._authorised(request)
        if refusal:
            return refusal
        intent = self.intents.get(intent_id)
        if intent is None:
            return _error(404, f"No such payment_intent: '{intent_id}'", code="resource_missing")
        return intent

    @route("POST", r"/v1/payment_intents")
    def create_intent(self, request):
        return self._post(request, self._create_intent)

    _REFUSALS = {
        "card_declined": ("card_declined", "generic_decline", "Your card was declined."),
        "insufficient_funds": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
        "authentication_required": ("authentication_required", "authentication_required",
                                    "Your card was declined. This transaction requires authentication."),
    }

    def _create_intent(self, form: dict) -> Reply:
        try:
            amount, currency = int(form["amount"]), form["currency"]
        except (KeyError, ValueError):
            return _error(400, "amount and currency are required")
        if amount <= 0 or currency != currency.lower() or len(currency) != 3:
            return _error(400, "Invalid amount or currency")
        if form.get("confirm") != "true" or form.get("off_session") != "true":
            return _error(400, "This fake only charges saved cards: confirm=true and off_session=true")
        customer_id, method_id = form.get("customer", ""), form.get("payment_method", "")
        method = self.payment_methods.get(method_id)
        if customer_id not in self.customers:
            return _error(400, f"No such customer: '{customer_id}'", code="resource_missing")
        if method is None or method["customer"] != customer_id:
            return _error(400, f"The payment method {method_id} does not belong to customer {customer_id}.")
        intent_id = _id("pi")
        intent = {"id": intent_id, "object": "payment_intent", "amount": amount, "currency": currency,
                  "customer": customer_id, "payment_method": method_id, "metadata": form.get("metadata", {}),
                  "description": form.get("description"), "livemode": False}
        self.intents[intent_id] = intent
        if method["_refuses"]:
            code, decline_code, message = self._REFUSALS[method["_refuses"]]
            intent.update(status="requires_payment_method", amount_received=0, latest_charge=None,
                          last_payment_error={"type": "card_error", "code": code, "decline_code": decline_code,
                                              "message": message})
            return Reply(402, {"error": {"type": "card_error", "code": code, "decline_code": decline_code,
                                         "message": message, "payment_intent": dict(intent)}})
        charge_id = _id("ch")
        self.charges[charge_id] = {"id": charge_id, "object": "charge", "amount": amount, "amount_refunded": 0,
                                   "refunded": False, "currency": currency, "payment_intent": intent_id,
                                   "paid": True, "status": "succeeded", "metadata": intent["metadata"]}
        intent.update(status="succeeded", amount_received=amount, latest_charge=charge_id)
        return Reply(200, dict(intent))

    # --- events ------------------------------------------------------------------------
    def event(self, kind: str, obj: dict, *, livemode: bool = False) -> dict:
        return {"id": f"evt_{random.token_hex(12)}", "object": "event", "api_version": "2024-06-20",
                "created": int(time.time()), "livemode": livemode, "type": kind, "pending_webhooks": 1,
                "data": {"object": json.loads(json.dumps(obj))}}

    def sign(self, body: bytes, *, timestamp: int | None = None, secrets: tuple[str, ...] | None = None) -> str:
        timestamp = int(time.time()) if timestamp is None else timestamp
        signatures = [hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
                      for secret in (secrets or (self.webhook_secret,))]
        return ",".join([f"t={timestamp}", *(f"v1={s}" for s in signatures)])

    def signed(self, event: dict, **options) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(event, indent=2).encode()  # Stripe pretty-prints; the signature covers the exact bytes
        return body, {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": self.sign(body, **options)}

    def notify(self, url: str, event: dict, **options):
        body, headers = self.signed(event, **options)
        return send_notification(url, body, headers)
