"""Alipay as a payment provider, over the open-platform gateway (``gateway.do``).

* Checkout: computer website pay (``alipay.trade.page.pay``), phone website pay
  (``alipay.trade.wap.pay``) — both a signed redirect of the buyer's browser — or a QR
  code from ``alipay.trade.precreate`` (当面付) shown on the shop's own page.
* Every request is signed with the application private key (RSA2); every answer and
  every async notification is verified with the *Alipay* public key before it is read.
* A notification is answered exactly ``success`` only after ``record_event`` committed;
  anything else (a rejection, a lock timeout) makes Alipay send it again.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
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
    SettlementLine,
    StatusOutcome,
    WebhookRejected,
)
from plugins.payments import china
from plugins.payments.alipay import signing
from plugins.payments.gateway import GatewayPaymentPlugin


PRODUCTION_GATEWAY = "https://openapi.alipay.com/gateway.do"
SANDBOX_GATEWAY = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
APP_ID_RE = re.compile(r"^[0-9]{16}$")
SELLER_ID_RE = re.compile(r"^2088[0-9]{12}$")
TRADE_NO_RE = re.compile(r"^[0-9A-Za-z_]{1,64}$")
PAID_STATES = ("TRADE_SUCCESS", "TRADE_FINISHED")
# Alipay re-sends an unanswered notification for about 25 hours; an older one is a replay
NOTIFY_MAX_AGE = timedelta(hours=48)
NOTIFY_MAX_AHEAD = timedelta(minutes=5)
MISCONFIGURED_SUB_CODES = {
    "isv.invalid-app-id", "isv.invalid-signature", "isv.missing-signature", "isv.invalid-signature-type",
    "isv.insufficient-isv-permissions", "isv.app-unonline", "ACQ.ACCESS_FORBIDDEN",
}
CHECKOUTS = (
    ("page", "Computer website checkout (电脑网站支付): the buyer is sent to Alipay's page"),
    ("wap", "Phone website checkout (手机网站支付): the buyer is sent to Alipay's mobile page"),
    ("qr", "QR code on the shop's page (当面付 扫码): the buyer scans it or taps it on a phone"),
)


def _key_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(label=label, max_length=8000, help_text=help_text,
                           widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}))


class AlipaySettingsForm(forms.Form):
    app_id = forms.CharField(label="APPID", max_length=16, help_text="The 16-digit APPID of your application on "
                                                                     "open.alipay.com.")
    app_private_key = _key_field("Application private key (应用私钥)",
                                 "The RSA2 private key from Alipay's key tool (PEM or the one-line base64 text). "
                                 "Stored encrypted.")
    alipay_public_key = _key_field("Alipay public key (支付宝公钥)",
                                   "Shown on open.alipay.com after you upload the application public key: "
                                   "接口加签方式 → 支付宝公钥. Not your own application public key.")
    seller_id = forms.CharField(label="Seller ID (PID)", max_length=16, required=False,
                                help_text="Optional: your 16-digit partner id starting with 2088. When set, "
                                          "notifications for another seller are refused.")
    checkout = forms.ChoiceField(label="Checkout", choices=CHECKOUTS, initial="page")
    environment = forms.ChoiceField(
        label="Environment", initial="production",
        choices=(("production", "Production: real payments"),
                 ("sandbox", "Sandbox (沙箱): Alipay's test accounts, no real money")),
        help_text="Sandbox APPIDs and keys only work in the sandbox, production ones only in production.")

    def clean_app_id(self) -> str:
        value = (self.cleaned_data.get("app_id") or "").strip()
        if not APP_ID_RE.match(value):
            raise forms.ValidationError("The APPID is the 16-digit number of your application, e.g. 2021001234567890.")
        return value

    def clean_seller_id(self) -> str:
        value = (self.cleaned_data.get("seller_id") or "").strip()
        if value and not SELLER_ID_RE.match(value):
            raise forms.ValidationError("The seller id (PID) is 16 digits starting with 2088.")
        return value

    def clean_app_private_key(self) -> str:
        value = (self.cleaned_data.get("app_private_key") or "").strip()
        if not value:  # blank keeps the stored key (plugins.services makes the field optional then)
            return value
        try:
            signing.load_private_key(value)
        except signing.KeyFormatError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean_alipay_public_key(self) -> str:
        value = (self.cleaned_data.get("alipay_public_key") or "").strip()
        try:
            signing.load_public_key(value)
        except signing.KeyFormatError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean(self):
        cleaned = super().clean()
        private, public = cleaned.get("app_private_key"), cleaned.get("alipay_public_key")
        if private and public:
            own = signing.public_key_text(signing.load_private_key(private).public_key())
            if own == signing.public_key_text(signing.load_public_key(public)):
                # the most common mistake: the application's own public key pasted as Alipay's
                self.add_error("alipay_public_key", "This is your application's own public key. Paste the Alipay "
                                                    "public key (支付宝公钥) that open.alipay.com shows next to it.")
        return cleaned



class AlipayPaymentPlugin(GatewayPaymentPlugin):
    slug = "alipay"
    name = "Alipay"
    public_name = "Alipay 支付宝"
    gateway_name = "Alipay"
    kind = PluginKind.PAYMENT
    version = "1.0"
    description = ("Take payments with Alipay: Alipay's checkout page on computers and phones, or a QR code on "
                   "the shop's page. Refunds go back through Alipay.")
    settings_form = AlipaySettingsForm
    secret_fields = ("app_private_key",)
    default_base_url = PRODUCTION_GATEWAY
    api_base_setting = "KAMENG_ALIPAY_API_BASE"  # platform-wide override (tests, egress proxies)
    supports_test_connection = True

    @property
    def base_url(self) -> str:
        override = getattr(settings, self.api_base_setting, "")
        sandbox = self.settings.get("environment") == "sandbox"
        return (override or (SANDBOX_GATEWAY if sandbox else PRODUCTION_GATEWAY)).rstrip("/")

    def is_allowed(self, order) -> bool:
        return order.total > 0 and order.currency == china.CNY

    # --- keys and signed calls --------------------------------------------------------------
    def _private_key(self):
        text = self.require_secret("app_private_key", "application private key")
        try:
            return signing.load_private_key(text)
        except signing.KeyFormatError:
            raise PaymentMisconfigured("The stored Alipay private key cannot be read; paste it again.") from None

    def _public_key(self):
        try:
            return signing.load_public_key(self.settings.get("alipay_public_key", ""))
        except signing.KeyFormatError:
            raise PaymentMisconfigured("The Alipay public key is missing or unreadable; paste it again in the "
                                       "Alipay settings.") from None

    def _signed_params(self, method: str, biz: dict, **extra: str) -> dict[str, str]:
        params = {
            "app_id": self.settings.get("app_id", ""), "method": method, "format": "JSON", "charset": "utf-8",
            "sign_type": "RSA2", "timestamp": china.beijing_time(), "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")), **extra,
        }
        return signing.sign_params(params, self._private_key())

    def _call(self, method: str, biz: dict, *, idempotent: bool, **extra: str) -> dict:
        """One signed API call; returns the verified ``<method>_response`` node, whatever its code."""
        params = self._signed_params(method, biz, **extra)
        response = self.http.request("POST", "", data=params, idempotent=idempotent,
                                     headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
        if response.status != 200:
            raise self.http.error_for(response)
        text = response.content.decode("utf-8", errors="replace")
        found = signing.response_node(text, method.replace(".", "_") + "_response")
        if found is None:
            error = signing.response_node(text, "error_response")
            if error is not None:  # an unsigned refusal can only stop us, never credit money
                self._raise_refusal(error[0])
            raise PaymentRetryable("Alipay sent an answer Kameng could not read. Try again in a moment.")
        node, raw = found
        signature = json.loads(text).get("sign")
        if not isinstance(signature, str) or not signing.verify(raw, signature, self._public_key()):
            if node.get("code") != "10000":
                self._raise_refusal(node)
            raise PaymentMisconfigured("Alipay's answer did not verify with the Alipay public key in the settings; "
                                       "paste the Alipay public key (支付宝公钥) again.")
        return node

    def _raise_refusal(self, node: dict) -> None:
        code, sub_code = str(node.get("code", "")), str(node.get("sub_code", ""))
        detail = str(node.get("sub_msg") or node.get("msg") or "")[:200]
        if sub_code in MISCONFIGURED_SUB_CODES or code in ("40001", "40006"):
            raise PaymentMisconfigured(f"Alipay refused the shop's credentials ({sub_code or code}: {detail}). "
                                       f"Check the APPID and keys in the Alipay settings.")
        if code == "20000" or sub_code.endswith("SYSTEM_ERROR"):
            raise PaymentRetryable("Alipay had a passing problem. Try again in a moment.")
        raise PaymentError(f"Alipay refused the request: {detail or sub_code or code}")

    # --- checkout ---------------------------------------------------------------------------
    def start(self, order, payment, *, return_url: str, notify_url: str) -> PaymentAction:
        if not self.is_allowed(order):
            raise PaymentError("Alipay takes payments in CNY only.")
        trade_no = china.out_trade_no(order, payment)
        biz = {"out_trade_no": trade_no, "total_amount": china.yuan(payment.amount),
               "subject": f"Order {order.number}"}
        if order.reserved_until:  # Alipay closes the trade when the reservation runs out
            biz["time_expire"] = china.beijing_time(order.reserved_until)
        checkout = self.settings.get("checkout") or "page"
        if checkout == "qr":
            # the same out_trade_no and amount return the same code: safe to send again
            node = self._call("alipay.trade.precreate", biz, idempotent=True, notify_url=notify_url)
            if node.get("code") != "10000":
                self._raise_refusal(node)
            qr_code = node.get("qr_code")
            if node.get("out_trade_no") != trade_no or not isinstance(qr_code, str) \
                    or not qr_code.startswith("https://"):
                raise PaymentRetryable("Alipay sent an unexpected answer. Try again in a moment.")
            return PaymentAction(kind="qr", qr_text=qr_code, url=qr_code, external_id=trade_no,
                                 message="Scan the code with the Alipay app, or tap it on your phone.")
        if checkout == "wap":
            biz.update(product_code="QUICK_WAP_WAY", quit_url=return_url)
            method = "alipay.trade.wap.pay"
        else:
            biz["product_code"] = "FAST_INSTANT_TRADE_PAY"
            method = "alipay.trade.page.pay"
        # the buyer's browser carries the signed request to Alipay (a GET of gateway.do)
        params = self._signed_params(method, biz, notify_url=notify_url, return_url=return_url)
        return PaymentAction(kind="redirect", url=f"{self.base_url}?{urlencode(params)}", external_id=trade_no)

    # --- notifications ----------------------------------------------------------------------
    def handle_webhook(self, request) -> list[GatewayEvent]:
        if request.content_type != "application/x-www-form-urlencoded":
            raise WebhookRejected("Alipay notifications are form-encoded.")
        if len(request.body) > 16384:
            raise WebhookRejected("The notification is too large.")
        lists = dict(request.POST.lists())
        if any(len(values) != 1 for values in lists.values()):
            raise WebhookRejected("A parameter appears more than once.")
        params = {name: values[0] for name, values in lists.items()}
        if params.get("sign_type") != "RSA2" or not params.get("sign"):
            raise WebhookRejected("The notification is not signed with RSA2.")
        try:
            public_key = self._public_key()
        except PaymentError:
            raise WebhookRejected("The Alipay plugin has no Alipay public key, so no notification can be verified.") \
                from None
        if not signing.verify(signing.notification_content(params), params["sign"], public_key):
            raise WebhookRejected("The signature does not match.")
        # genuine from here on: now check it is meant for this shop's application
        if params.get("app_id") != self.settings.get("app_id"):
            raise WebhookRejected("The notification is for another Alipay application.")
        seller_id = self.settings.get("seller_id")
        if seller_id and params.get("seller_id") != seller_id:
            raise WebhookRejected("The notification is for another Alipay seller.")
        sent_at = china.parse_beijing_time(params.get("notify_time", ""))
        now = datetime.now(timezone.utc)
        if sent_at is None or sent_at < now - NOTIFY_MAX_AGE or sent_at > now + NOTIFY_MAX_AHEAD:
            raise WebhookRejected("The notification's notify_time is missing or too far from now.")
        if params.get("notify_type") != "trade_status_sync":
            return [GatewayEvent(event_id="ignored", kind="ignored", raw=params)]
        return [self._event(params)]

    def _event(self, params: dict[str, str]) -> GatewayEvent:
        trade_no, out_trade_no, status = params.get("trade_no", ""), params.get("out_trade_no", ""), \
            params.get("trade_status", "")
        if not TRADE_NO_RE.match(trade_no) or not TRADE_NO_RE.match(out_trade_no):
            raise WebhookRejected("The notification lacks trade_no or out_trade_no.")
        try:
            total = china.fen(params.get("total_amount", ""))
        except ValueError:
            raise WebhookRejected("The notification's total_amount is not an amount.") from None
        common = {"payment_reference": china.payment_reference(out_trade_no), "external_id": out_trade_no,
                  "currency": china.CNY, "raw": params}
        refund_no = params.get("out_biz_no", "")
        if refund_no and params.get("refund_fee"):
            # a refund: partial ones keep TRADE_SUCCESS, a full one closes the trade
            if not TRADE_NO_RE.match(refund_no):
                raise WebhookRejected("The refund notification has a malformed out_biz_no.")
            return GatewayEvent(event_id=f"{trade_no}:refund:{refund_no}", kind="refund.succeeded",
                                amount=self._refund_amount(out_trade_no, refund_no), refund_external_id=refund_no,
                                **common)
        if status in PAID_STATES:
            return GatewayEvent(event_id=f"{trade_no}:paid", kind="payment.succeeded", amount=total, **common)
        if status == "TRADE_CLOSED":
            return GatewayEvent(event_id=f"{trade_no}:closed", kind="payment.failed", amount=total, **common)
        return GatewayEvent(event_id=f"{trade_no}:{status}", kind="ignored", raw=params)

    def _refund_amount(self, out_trade_no: str, refund_no: str) -> int:
        """The notification tells the running refund total only; ask what this refund was."""
        try:
            node = self._call("alipay.trade.fastpay.refund.query",
                              {"out_trade_no": out_trade_no, "out_request_no": refund_no}, idempotent=True)
        except PaymentError as exc:
            # not answered "success": Alipay sends the notification again later
            raise WebhookRejected(f"Could not confirm the refund with Alipay: {exc.message}", status=503) from None
        try:
            if node.get("code") != "10000" or node.get("refund_status", "REFUND_SUCCESS") != "REFUND_SUCCESS":
                raise ValueError
            return china.fen(node.get("refund_amount", ""))
        except ValueError:
            raise WebhookRejected("Alipay does not confirm this refund yet.", status=503) from None

    def webhook_response(self, results: list[str]):
        # exactly "success": anything else and Alipay keeps sending (about 8 times in 25 hours)
        return HttpResponse("success", content_type="text/plain; charset=utf-8")

    # --- queries and refunds ----------------------------------------------------------------
    def fetch_status(self, payment) -> StatusOutcome:
        if not payment.external_id:
            return StatusOutcome(status="pending")
        node = self._call("alipay.trade.query", {"out_trade_no": payment.external_id}, idempotent=True)
        if node.get("code") != "10000":
            if node.get("sub_code") == "ACQ.TRADE_NOT_EXIST":  # the buyer never opened the checkout
                return StatusOutcome(status="pending", external_id=payment.external_id)
            self._raise_refusal(node)
        state = node.get("trade_status")
        status = "succeeded" if state in PAID_STATES else "failed" if state == "TRADE_CLOSED" else "pending"
        try:
            amount = china.fen(node.get("total_amount", ""))
        except ValueError:
            amount = 0
        return StatusOutcome(status=status, external_id=payment.external_id, amount=amount, currency=china.CNY)

    def refund(self, payment, amount: int) -> RefundOutcome:
        if not payment.external_id:
            return RefundOutcome(succeeded=False, message="This payment never reached Alipay.")
        # one out_request_no per refund step: a retry of the same step is answered, never paid twice
        refund_no = f"RF{payment.refunded_amount}T{amount}"
        node = self._call("alipay.trade.refund", {
            "out_trade_no": payment.external_id, "refund_amount": china.yuan(amount), "out_request_no": refund_no,
        }, idempotent=True)
        if node.get("code") != "10000":
            self._raise_refusal(node)
        try:
            refunded_total = china.fen(node.get("refund_fee", ""))
        except ValueError:
            refunded_total = -1
        if node.get("out_trade_no") != payment.external_id or refunded_total < payment.refunded_amount + amount:
            return RefundOutcome(succeeded=False, message="Alipay did not confirm the refund.")
        return RefundOutcome(succeeded=True, external_id=refund_no)

    # --- reconciliation (对账): docs/reconciliation.md, decision 0031 ----------------------
    supports_settlement = True

    def settlement(self, day) -> list[SettlementLine]:
        """The trade bill of ``day`` as a China-time day (Alipay's own business day)."""
        from plugins.payments.alipay import bills

        node = self._call(bills.METHOD, {"bill_type": "trade", "bill_date": day.isoformat()}, idempotent=True)
        if node.get("code") != "10000":
            if node.get("sub_code") == "isp.bill_not_exist":
                if datetime.now(timezone.utc) >= bills.ready_at(day):
                    return []  # Alipay makes no bill for a day without trades
                raise PaymentError(f"Alipay has not published the bill for {day.isoformat()} yet (bills are ready "
                                   "the next day from about 9 a.m. China time).", retryable=True)
            if node.get("sub_code") in ("isv.insufficient-isv-permissions", "ACQ.ACCESS_FORBIDDEN"):
                raise PaymentMisconfigured("The Alipay application may not download bills: add the bill download "
                                           "(对账单下载) capability to the application on open.alipay.com.")
            self._raise_refusal(node)
        url = node.get("bill_download_url")
        if not isinstance(url, str) or not self._bill_url_allowed(url):
            raise bills.unreadable("the answer has no valid download link")
        response = self.http.request("GET", url)
        if response.status != 200:
            raise bills.unreadable(f"the download answered {response.status}")
        return bills.settlement_lines(bills.detail_text(response.content))

    def _bill_url_allowed(self, url: str) -> bool:
        # the link comes from a verified answer; still, only over TLS or to the configured gateway's host
        parts, gateway = urlsplit(url), urlsplit(self.base_url)
        return (parts.scheme == "https" and bool(parts.hostname)) or \
            (parts.scheme, parts.netloc) == (gateway.scheme, gateway.netloc)

    def test_connection(self) -> str:
        """A query for a trade that cannot exist: a signed "not found" proves APPID and both keys."""
        node = self._call("alipay.trade.query", {"out_trade_no": "KAMENGTEST0"}, idempotent=True)
        if node.get("code") == "10000" or node.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return "Alipay accepted the APPID and the private key, and its answer verified with the Alipay public key."
        self._raise_refusal(node)
        return ""  # pragma: no cover - _raise_refusal always raises
