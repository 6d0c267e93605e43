"""EPay (易支付), the aggregator protocol many small card shops use, as a payment provider.

* Checkout: ``submit.php`` (the buyer's browser carries the signed parameters to the
  EPay site) or ``mapi.php`` (server to server; answers a pay URL or a QR code).
* Signatures are MD5 over the sorted parameters plus the merchant key: weak, and the
  key also travels in the query URL. So **a notify is only a trigger**: Kameng asks
  ``api.php?act=order`` whether the order is paid, and credits only what that answer
  says (amount included). A correctly signed notify that the query does not confirm
  changes nothing.
* Notifies usually arrive as GET (some sites POST); both are taken, and answered
  ``success`` once handled.
"""
from __future__ import annotations

import ipaddress
import logging
import re
import socket
from urllib.parse import urlencode, urlsplit

from django import forms
from django.conf import settings
from django.http import HttpResponse

from plugins.base import PluginKind
from plugins.payment import (
    GatewayEvent,
    PaymentAction,
    PaymentError,
    PaymentMisconfigured,
    PaymentRetryable,
    RefundOutcome,
    StatusOutcome,
    WebhookRejected,
)
from plugins.payments import china
from plugins.payments.epay import signing
from plugins.payments.gateway import REDACTED, GatewayPaymentPlugin

logger = logging.getLogger(__name__)

PID_RE = re.compile(r"^[0-9]{1,12}$")
KEY_RE = re.compile(r"^[0-9A-Za-z]{16,64}$")
TRADE_NO_RE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
PAY_TYPES = (("alipay", "Alipay (支付宝)"), ("wxpay", "WeChat Pay (微信支付)"), ("qqpay", "QQ Wallet (QQ钱包)"))
MODES = (("submit", "Redirect the buyer to the EPay site (submit.php)"),
         ("mapi", "Ask the EPay site for a pay link or QR code (mapi.php)"))
_KEY_IN_URL = re.compile(r"([?&]key=)[^&\s\"']+")


class _KeyInUrlFilter(logging.Filter):
    """urllib3 logs request lines (with their query string) at DEBUG; the EPay order
    query carries the merchant key there, by the protocol's design. Mask it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(_KEY_IN_URL.sub(rf"\g<1>{REDACTED}", a) if isinstance(a, str) else a
                                for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _KEY_IN_URL.sub(rf"\g<1>{REDACTED}", record.msg)
        return True


_URLLIB3_FILTER = _KeyInUrlFilter()
logging.getLogger("urllib3.connectionpool").addFilter(_URLLIB3_FILTER)  # same object each time: added once


def site_url_problem(url: str, *, resolve: bool) -> str | None:
    """Why Kameng will not call this EPay site, or None. Unlike the other gateways the
    address is the shop's choice, so on a production platform it must be https on a
    public address: a shop must not aim the platform's server at internal hosts."""
    if not getattr(settings, "PRODUCTION", False):
        return None  # development and tests run EPay sites on this machine
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        return "The EPay site address must start with https:// and name a host, without a user name."
    try:
        addresses = [ipaddress.ip_address(parts.hostname)]
    except ValueError:
        if not resolve:
            return None
        try:
            addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in
                         socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)]
        except (OSError, ValueError):
            return "The EPay site's host name does not resolve."
    if any(not address.is_global for address in addresses):
        return "The EPay site address points into a private network; use the provider's public address."
    return None


class EPaySettingsForm(forms.Form):
    api_base = forms.URLField(label="EPay site URL", max_length=200, assume_scheme="https",
                              help_text="The address of your EPay provider, e.g. https://pay.example.com "
                                        "(without submit.php).")
    pid = forms.CharField(label="Merchant id (商户ID / pid)", max_length=12,
                          help_text="The number your EPay provider shows in its merchant console.")
    key = forms.CharField(label="Merchant key (商户密钥)", max_length=64,
                          widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
                          help_text="16 to 64 letters or digits, from the EPay merchant console. Stored encrypted.")
    pay_type = forms.ChoiceField(label="Pay with", choices=PAY_TYPES, initial="alipay")
    mode = forms.ChoiceField(label="Checkout", choices=MODES, initial="submit")

    def clean_api_base(self) -> str:
        value = (self.cleaned_data.get("api_base") or "").strip().rstrip("/")
        for suffix in ("/submit.php", "/mapi.php", "/api.php"):
            if value.endswith(suffix):
                value = value[: -len(suffix)]
        problem = site_url_problem(value, resolve=True)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_pid(self) -> str:
        value = (self.cleaned_data.get("pid") or "").strip()
        if not PID_RE.match(value):
            raise forms.ValidationError("The merchant id (pid) is a number of up to 12 digits.")
        return value

    def clean_key(self) -> str:
        value = (self.cleaned_data.get("key") or "").strip()
        if value and not KEY_RE.match(value):  # blank keeps the stored key
            raise forms.ValidationError("The merchant key is 16 to 64 letters or digits.")
        return value



class EPayPaymentPlugin(GatewayPaymentPlugin):
    slug = "epay"
    name = "EPay (易支付)"
    public_name = "Alipay / WeChat Pay (EPay)"
    gateway_name = "EPay"
    kind = PluginKind.PAYMENT
    version = "1.0"
    description = ("Take payments through an EPay (易支付) provider: Alipay, WeChat Pay or QQ Wallet. Every notify "
                   "is confirmed with the provider before an order is paid.")
    settings_form = EPaySettingsForm
    secret_fields = ("key",)
    supports_test_connection = True
    #: EPay sites send their notify as a GET request (some as POST)
    webhook_methods = ("GET", "POST")

    def is_allowed(self, order) -> bool:
        return order.total > 0 and order.currency == china.CNY

    @property
    def base_url(self) -> str:
        """The shop's EPay site (its own choice, unlike other gateways), checked again at
        call time: a name that resolved to a public address when saved may not now."""
        url = (self.settings.get("api_base") or "").rstrip("/")
        if not url:
            raise PaymentMisconfigured("EPay is not set up: enter the EPay site URL in the shop console.")
        problem = site_url_problem(url, resolve=True)
        if problem:
            raise PaymentMisconfigured(f"Kameng will not call this EPay site: {problem}")
        return url

    @property
    def pid(self) -> str:
        return self.settings.get("pid", "")

    def _key(self) -> str:
        return self.require_secret("key", "merchant key")

    # --- checkout ---------------------------------------------------------------------------
    def start(self, order, payment, *, return_url: str, notify_url: str) -> PaymentAction:
        if not self.is_allowed(order):
            raise PaymentError("EPay takes payments in CNY only.")
        trade_no = china.out_trade_no(order, payment)
        params = {"pid": self.pid, "type": self.settings.get("pay_type") or "alipay", "out_trade_no": trade_no,
                  "notify_url": notify_url, "return_url": return_url, "name": f"Order {order.number}",
                  "money": china.yuan(payment.amount)}
        if self.settings.get("mode") != "mapi":
            signed = signing.sign_params(params, self._key())
            return PaymentAction(kind="redirect", url=f"{self.base_url}/submit.php?{urlencode(signed)}",
                                 external_id=trade_no)
        params.update(clientip=order.ip or "", device="pc")
        response = self.http.request("POST", "/mapi.php", data=signing.sign_params(params, self._key()))
        body = response.json()
        if not response.ok or not isinstance(body, dict):
            raise self.http.error_for(response) if not response.ok else \
                PaymentRetryable("EPay sent an answer Kameng could not read. Try again in a moment.")
        if str(body.get("code")) != "1":
            raise PaymentError(f"EPay refused the payment: {str(body.get('msg') or 'no reason given')[:200]}")
        for field, kind in (("payurl", "redirect"), ("qrcode", "qr"), ("urlscheme", "redirect")):
            value = body.get(field)
            if isinstance(value, str) and value.startswith(("https://", "http://", "weixin://", "alipays://")):
                return PaymentAction(kind=kind, url=value if kind == "redirect" else "",
                                     qr_text=value if kind == "qr" else "", external_id=trade_no)
        raise PaymentRetryable("EPay sent no pay link. Try again in a moment.")

    # --- the order query: the only thing that credits money --------------------------------
    def _query(self, out_trade_no: str) -> dict | None:
        """``api.php?act=order``: the order as the EPay site knows it, or None if it knows none."""
        response = self.http.request("GET", "/api.php", params={
            "act": "order", "pid": self.pid, "key": self._key(), "out_trade_no": out_trade_no})
        body = response.json()
        if not response.ok:
            raise self.http.error_for(response)
        if not isinstance(body, dict):
            raise PaymentRetryable("EPay sent an answer Kameng could not read. Try again in a moment.")
        if str(body.get("code")) != "1":
            return None
        if str(body.get("pid", self.pid)) != self.pid or body.get("out_trade_no") != out_trade_no:
            raise PaymentError("EPay answered about another order.")
        return body

    def _paid_event(self, out_trade_no: str, order: dict, raw: dict) -> GatewayEvent | None:
        if str(order.get("status")) != "1":
            return None
        trade_no = str(order.get("trade_no") or "")
        try:
            amount = china.fen(order.get("money", ""))
        except ValueError:
            raise PaymentRetryable("EPay's order query gave no readable amount.") from None
        if not TRADE_NO_RE.match(trade_no):
            raise PaymentRetryable("EPay's order query gave no trade number.")
        return GatewayEvent(event_id=f"{trade_no}:paid", kind="payment.succeeded",
                            payment_reference=china.payment_reference(out_trade_no), external_id=out_trade_no,
                            amount=amount, currency=china.CNY, raw=raw)

    # --- notifications ----------------------------------------------------------------------
    def handle_webhook(self, request) -> list[GatewayEvent]:
        source = request.GET if request.method == "GET" else request.POST
        lists = dict(source.lists())
        if not lists or any(len(values) != 1 for values in lists.values()):
            raise WebhookRejected("The notify has no parameters or repeats one.")
        params = {name: values[0] for name, values in lists.items()}
        try:
            key = self._key()
        except PaymentError:
            raise WebhookRejected("The EPay plugin has no merchant key, so no notify can be verified.") from None
        if (params.get("sign_type") or "MD5").upper() != "MD5" or not signing.verify(params, key):
            raise WebhookRejected("The signature does not match.")
        if params.get("pid") != self.pid:
            raise WebhookRejected("The notify is for another merchant id.")
        out_trade_no = params.get("out_trade_no", "")
        if not TRADE_NO_RE.match(out_trade_no):
            raise WebhookRejected("The notify lacks out_trade_no.")
        if params.get("trade_status") != "TRADE_SUCCESS":
            return [GatewayEvent(event_id="ignored", kind="ignored", raw=params)]
        # the signature only says someone knows the key: ask the gateway itself
        try:
            order = self._query(out_trade_no)
            event = self._paid_event(out_trade_no, order, {"notify": params, "query": order}) if order else None
        except PaymentError as exc:
            raise WebhookRejected(f"Could not confirm the order with EPay: {exc.message}", status=503) from None
        if event is None:
            logger.warning("epay notify for %s not confirmed by the order query: nothing credited", out_trade_no)
            return [GatewayEvent(event_id="unconfirmed", kind="ignored", raw=params)]
        return [event]

    def webhook_response(self, results: list[str]):
        return HttpResponse("success", content_type="text/plain; charset=utf-8")

    # --- queries and refunds ----------------------------------------------------------------
    def fetch_status(self, payment) -> StatusOutcome:
        if not payment.external_id:
            return StatusOutcome(status="pending")
        order = self._query(payment.external_id)
        event = self._paid_event(payment.external_id, order, {}) if order else None
        if event is None:
            return StatusOutcome(status="pending", external_id=payment.external_id)
        return StatusOutcome(status="succeeded", external_id=payment.external_id, amount=event.amount,
                             currency=china.CNY)

    def refund(self, payment, amount: int) -> RefundOutcome:
        if not payment.external_id:
            return RefundOutcome(succeeded=False, message="This payment never reached EPay.")
        # EPay's refund takes no request id, so it is sent once and never retried on its own
        response = self.http.request("POST", "/api.php?act=refund", data={
            "pid": self.pid, "key": self._key(), "out_trade_no": payment.external_id, "money": china.yuan(amount)},
            idempotent=False)
        if response.status == 404:
            raise PaymentError("This EPay site offers no refunds through its API: refund in the EPay merchant "
                               "console, then record the refund in Kameng.")
        body = response.json()
        if not response.ok:
            raise self.http.error_for(response)
        if not isinstance(body, dict) or str(body.get("code")) != "1":
            message = str(body.get("msg") or "") if isinstance(body, dict) else ""
            return RefundOutcome(succeeded=False, message=f"EPay refused the refund: {message[:200] or 'no reason'}")
        return RefundOutcome(succeeded=True, external_id=f"{payment.external_id}R{payment.refunded_amount}T{amount}")

    def test_connection(self) -> str:
        """``api.php?act=query``: the merchant's own record proves pid and key."""
        response = self.http.request("GET", "/api.php", params={"act": "query", "pid": self.pid, "key": self._key()})
        body = response.json()
        if not response.ok:
            raise self.http.error_for(response)
        if not isinstance(body, dict) or str(body.get("code")) != "1":
            raise PaymentMisconfigured("EPay refused the merchant id and key; check them in the EPay settings.")
        return "EPay accepted the merchant id and key."
