"""WeChat Pay API v3 as a payment provider.

* Checkout: Native (``/v3/pay/transactions/native`` → ``code_url``, a QR code on the
  shop's page) or H5 (``/v3/pay/transactions/h5`` → ``h5_url``, the phone browser is
  sent to WeChat). Amounts are integers in fen, as ours are.
* Requests carry ``Authorization: WECHATPAY2-SHA256-RSA2048 …`` signed with the merchant
  API key; answers and notifications are verified against the platform certificate
  named by ``Wechatpay-Serial`` (timestamps more than 5 minutes off are refused), and the
  notification's ``resource`` is decrypted with the 32-byte APIv3 key (AES-256-GCM).
* Notifications are acknowledged with 204 once recorded; a refusal (4xx) or a lock
  timeout (503) makes WeChat send them again.
"""
from __future__ import annotations

import json
import logging
import re
from urllib.parse import quote, urlencode, urlsplit

from django import forms
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
from plugins.payments.gateway import GatewayPaymentPlugin, GatewayResponse, redact
from plugins.payments.wechatpay import signing

logger = logging.getLogger(__name__)

PRODUCTION_API = "https://api.mch.weixin.qq.com"
MCHID_RE = re.compile(r"^[0-9]{8,12}$")
APPID_RE = re.compile(r"^wx[0-9A-Za-z]{16}$")
SERIAL_RE = re.compile(r"^[0-9A-Fa-f]{8,40}$")
APIV3_KEY_RE = re.compile(r"^[0-9A-Za-z]{32}$")
EVENT_ID_RE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
OUT_NO_RE = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
FAILED_STATES = ("CLOSED", "REVOKED", "PAYERROR")
CHECKOUTS = (
    ("native", "Native (扫码支付): a QR code on the shop's page, scanned with WeChat"),
    ("h5", "H5 (H5支付): phone browsers are sent to WeChat to pay"),
)


def _text_field(label: str, help_text: str, *, rows: int = 4) -> forms.CharField:
    return forms.CharField(label=label, max_length=20000, help_text=help_text,
                           widget=forms.Textarea(attrs={"rows": rows, "autocomplete": "off", "spellcheck": "false"}))


class WeChatPaySettingsForm(forms.Form):
    mchid = forms.CharField(label="Merchant id (商户号)", max_length=12,
                            help_text="The number pay.weixin.qq.com shows at the top right, e.g. 1900000109.")
    appid = forms.CharField(label="AppID", max_length=18,
                            help_text="The AppID bound to the merchant account (official account, mini program "
                                      "or website app), wx followed by 16 letters or digits.")
    merchant_serial_no = forms.CharField(label="Merchant certificate serial number (证书序列号)", max_length=40,
                                         help_text="Account centre → API security → API certificate → view "
                                                   "certificate: the serial number, 8 to 40 hex digits.")
    merchant_private_key = _text_field("Merchant API private key (apiclient_key.pem)",
                                       "The whole apiclient_key.pem from the certificate tool. Stored encrypted.")
    apiv3_key = forms.CharField(label="APIv3 key (APIv3密钥)", max_length=64,
                                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
                                help_text="The 32 letters and digits you set under API security → APIv3 key. "
                                          "Stored encrypted.")
    platform_certificates = _text_field(
        "Platform certificate or WeChat Pay public key (平台证书 / 微信支付公钥)",
        "PEM text of the platform certificate (several one after another while WeChat rotates them) and/or the "
        "WeChat Pay public key. Answers and notifications signed by any other key are refused.")
    platform_public_key_id = forms.CharField(
        label="WeChat Pay public key ID", max_length=80, required=False,
        help_text="Only with a WeChat Pay public key: its ID, PUB_KEY_ID_ followed by letters and digits "
                  "(账户中心 → API安全 → 微信支付公钥).")
    checkout = forms.ChoiceField(label="Checkout", choices=CHECKOUTS, initial="native")

    def clean_mchid(self) -> str:
        value = (self.cleaned_data.get("mchid") or "").strip()
        if not MCHID_RE.match(value):
            raise forms.ValidationError("The merchant id (商户号) is 8 to 12 digits, e.g. 1900000109.")
        return value

    def clean_appid(self) -> str:
        value = (self.cleaned_data.get("appid") or "").strip()
        if not APPID_RE.match(value):
            raise forms.ValidationError("The AppID starts with wx followed by 16 letters or digits.")
        return value

    def clean_merchant_serial_no(self) -> str:
        value = (self.cleaned_data.get("merchant_serial_no") or "").strip()
        if not SERIAL_RE.match(value):
            raise forms.ValidationError("The certificate serial number is 8 to 40 hex digits (0-9, A-F).")
        return value.upper()

    def clean_merchant_private_key(self) -> str:
        value = (self.cleaned_data.get("merchant_private_key") or "").strip()
        if value:  # blank keeps the stored key
            try:
                signing.load_private_key(value)
            except signing.KeyFormatError as exc:
                raise forms.ValidationError(str(exc)) from None
        return value

    def clean_apiv3_key(self) -> str:
        value = self.cleaned_data.get("apiv3_key") or ""
        if value:  # blank keeps the stored key
            try:
                signing.apiv3_key_bytes(value)
            except signing.KeyFormatError as exc:
                raise forms.ValidationError(str(exc)) from None
            if not APIV3_KEY_RE.match(value):
                raise forms.ValidationError("The APIv3 key is made of letters and digits only.")
        return value

    def clean_platform_certificates(self) -> str:
        return (self.cleaned_data.get("platform_certificates") or "").strip()

    def clean_platform_public_key_id(self) -> str:
        return (self.cleaned_data.get("platform_public_key_id") or "").strip()

    def clean(self):
        cleaned = super().clean()
        if "platform_certificates" not in cleaned:
            return cleaned
        try:
            keys = signing.load_verification_keys(cleaned["platform_certificates"],
                                                  cleaned.get("platform_public_key_id", ""))
        except signing.KeyFormatError as exc:
            field = "platform_public_key_id" if "public key ID" in str(exc) else "platform_certificates"
            self.add_error(field, str(exc))
            return cleaned
        serial = cleaned.get("merchant_serial_no")
        if serial and serial in keys:
            self.add_error("merchant_serial_no", "This is the platform certificate's serial number. Enter the "
                                                 "serial number of your own merchant API certificate.")
        return cleaned



class WeChatPayPaymentPlugin(GatewayPaymentPlugin):
    slug = "wechatpay"
    name = "WeChat Pay"
    public_name = "WeChat Pay 微信支付"
    gateway_name = "WeChat Pay"
    kind = PluginKind.PAYMENT
    version = "1.0"
    description = ("Take payments with WeChat Pay (API v3): a QR code on computers (Native) or WeChat's H5 "
                   "checkout on phones. Refunds go back through WeChat Pay.")
    settings_form = WeChatPaySettingsForm
    secret_fields = ("merchant_private_key", "apiv3_key")
    default_base_url = PRODUCTION_API
    api_base_setting = "KAMENG_WECHATPAY_API_BASE"  # platform-wide override (tests, egress proxies)
    supports_test_connection = True

    def is_allowed(self, order) -> bool:
        return order.total > 0 and order.currency == china.CNY

    # --- keys and signed calls --------------------------------------------------------------
    @property
    def mchid(self) -> str:
        return self.settings.get("mchid", "")

    def _private_key(self):
        try:
            return signing.load_private_key(self.require_secret("merchant_private_key", "merchant API private key"))
        except signing.KeyFormatError:
            raise PaymentMisconfigured("The stored WeChat Pay private key cannot be read; paste it again.") from None

    def _verification_keys(self):
        try:
            return signing.load_verification_keys(self.settings.get("platform_certificates", ""),
                                                  self.settings.get("platform_public_key_id", ""))
        except signing.KeyFormatError:
            raise PaymentMisconfigured("The WeChat Pay platform certificate or public key is missing or unreadable; "
                                       "paste it again.") from None

    def _verify_answer(self, response: GatewayResponse) -> None:
        try:
            signing.verify_signed_message(
                timestamp=response.headers.get("Wechatpay-Timestamp", ""),
                nonce=response.headers.get("Wechatpay-Nonce", ""),
                signature=response.headers.get("Wechatpay-Signature", ""),
                serial=response.headers.get("Wechatpay-Serial", ""),
                body=response.content.decode("utf-8", errors="replace"), keys=self._verification_keys())
        except signing.SignatureError as exc:
            raise PaymentMisconfigured(f"WeChat Pay's answer did not verify ({exc}). Check the platform "
                                       f"certificate or public key in the WeChat Pay settings.") from None

    def _call(self, method: str, path: str, *, body: dict | None = None, idempotent: bool) -> GatewayResponse:
        """One signed call; a 2xx answer is returned only when its signature verifies."""
        body_text = json.dumps(body, ensure_ascii=False, separators=(",", ":")) if body is not None else ""
        signed_url = urlsplit(self.base_url).path.rstrip("/") + path  # what the server sees: path and query
        headers = {
            "Authorization": signing.authorization(mchid=self.mchid, serial_no=self.settings.get("merchant_serial_no",
                                                                                                 ""),
                                                   private_key=self._private_key(), method=method, url=signed_url,
                                                   body=body_text),
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = self.http.request(method, path, content=body_text.encode() if body is not None else None,
                                     headers=headers, idempotent=idempotent)
        if response.ok:
            self._verify_answer(response)
        return response

    def _refused(self, response: GatewayResponse) -> PaymentError:
        body = response.json() if isinstance(response.json(), dict) else {}
        code, message = str(body.get("code", "")), str(body.get("message", ""))
        if code in ("SIGN_ERROR", "MCH_NOT_EXISTS", "APPID_MCHID_NOT_MATCH", "NO_AUTH", "INVALID_REQUEST_SERIAL"):
            return PaymentMisconfigured(f"WeChat Pay refused the shop's credentials ({code}: {message[:150]}). "
                                        f"Check the WeChat Pay settings.")
        if code in ("SYSTEM_ERROR", "FREQUENCY_LIMITED", "BANK_ERROR"):
            return PaymentRetryable("WeChat Pay had a passing problem. Try again in a moment.")
        if code and response.status != 401:  # a business refusal (NOT_ENOUGH, ORDERPAID …), even under 403
            detail = redact(f"{code}: {message}", self.http.secrets)[:200]
            return PaymentError(f"WeChat Pay refused the request: {detail}")
        return self.http.error_for(response, message)

    def _json(self, response: GatewayResponse) -> dict:
        body = response.json()
        if not isinstance(body, dict):
            raise PaymentRetryable("WeChat Pay sent an answer Kameng could not read. Try again in a moment.")
        return body

    # --- checkout ---------------------------------------------------------------------------
    def start(self, order, payment, *, return_url: str, notify_url: str) -> PaymentAction:
        if not self.is_allowed(order):
            raise PaymentError("WeChat Pay takes payments in CNY only.")
        trade_no = china.out_trade_no(order, payment)
        body = {"appid": self.settings.get("appid", ""), "mchid": self.mchid, "description": f"Order {order.number}",
                "out_trade_no": trade_no, "notify_url": notify_url,
                "amount": {"total": payment.amount, "currency": china.CNY}}
        if order.reserved_until:  # WeChat closes the order when the reservation runs out
            body["time_expire"] = order.reserved_until.astimezone(china.BEIJING).isoformat(timespec="seconds")
        if self.settings.get("checkout") == "h5":
            if not order.ip:
                raise PaymentError("WeChat H5 payments need the buyer's IP address; pay by QR code instead.")
            body["scene_info"] = {"payer_client_ip": order.ip, "h5_info": {"type": "Wap"}}
            # the same out_trade_no and body are answered with the same order: safe to send again
            response = self._call("POST", "/v3/pay/transactions/h5", body=body, idempotent=True)
            if not response.ok:
                raise self._refused(response)
            h5_url = self._json(response).get("h5_url")
            if not isinstance(h5_url, str) or not h5_url.startswith("https://"):
                raise PaymentRetryable("WeChat Pay sent an unexpected answer. Try again in a moment.")
            return PaymentAction(kind="redirect", url=f"{h5_url}&redirect_url={quote(return_url, safe='')}",
                                 external_id=trade_no)
        response = self._call("POST", "/v3/pay/transactions/native", body=body, idempotent=True)
        if not response.ok:
            raise self._refused(response)
        code_url = self._json(response).get("code_url")
        if not isinstance(code_url, str) or not code_url.startswith("weixin://"):
            raise PaymentRetryable("WeChat Pay sent an unexpected answer. Try again in a moment.")
        return PaymentAction(kind="qr", qr_text=code_url, external_id=trade_no,
                             message="Scan the code with WeChat to pay.")

    # --- notifications ----------------------------------------------------------------------
    def handle_webhook(self, request) -> list[GatewayEvent]:
        if len(request.body) > 65536:
            raise WebhookRejected("The notification is too large.")
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRejected("The notification is not UTF-8.") from None
        signature_type = request.headers.get("Wechatpay-Signature-Type")
        if signature_type and signature_type != signing.SCHEMA:
            raise WebhookRejected(f"Only {signing.SCHEMA} signatures are accepted.")
        try:
            keys = self._verification_keys()
            apiv3_key = signing.apiv3_key_bytes(self.require_secret("apiv3_key", "APIv3 key"))
        except (PaymentError, signing.KeyFormatError):
            raise WebhookRejected("The WeChat Pay plugin lacks its platform certificate (or public key) or APIv3 key, so "
                            "no notification can be verified.") from None
        try:
            signing.verify_signed_message(
                timestamp=request.headers.get("Wechatpay-Timestamp", ""), nonce=request.headers.get("Wechatpay-Nonce",
                                                                                                     ""),
                signature=request.headers.get("Wechatpay-Signature", ""),
                serial=request.headers.get("Wechatpay-Serial", ""), body=body, keys=keys)
        except signing.SignatureError as exc:
            raise WebhookRejected(str(exc)) from None
        try:
            payload = json.loads(body)
        except ValueError:
            raise WebhookRejected("The notification is not JSON.") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) \
                or not EVENT_ID_RE.match(payload["id"]) or not isinstance(payload.get("event_type"), str):
            raise WebhookRejected("The notification lacks an id or an event_type.")
        try:
            resource = json.loads(signing.decrypt_resource(payload.get("resource"), apiv3_key))
        except signing.SignatureError as exc:
            raise WebhookRejected(str(exc)) from None
        except ValueError:
            raise WebhookRejected("The decrypted resource is not JSON.") from None
        if not isinstance(resource, dict):
            raise WebhookRejected("The decrypted resource is not an object.")
        raw = {"id": payload["id"], "event_type": payload["event_type"], "resource": resource}
        return [self._event(payload["id"], payload["event_type"], resource, raw)]

    def _event(self, event_id: str, event_type: str, resource: dict, raw: dict) -> GatewayEvent:
        if resource.get("mchid") != self.mchid:
            raise WebhookRejected("The notification is for another merchant id.")
        out_trade_no = resource.get("out_trade_no")
        amount = resource.get("amount")
        if not isinstance(out_trade_no, str) or not OUT_NO_RE.match(out_trade_no) or not isinstance(amount, dict):
            raise WebhookRejected("The notification lacks out_trade_no or amount.")
        common = {"payment_reference": china.payment_reference(out_trade_no), "external_id": out_trade_no, "raw": raw}
        if event_type == "TRANSACTION.SUCCESS":
            if resource.get("appid") != self.settings.get("appid") or resource.get("trade_state") != "SUCCESS":
                raise WebhookRejected("The transaction is for another AppID or not successful.")
            return GatewayEvent(event_id=event_id, kind="payment.succeeded", amount=self._fen(amount, "total"),
                                currency=str(amount.get("currency", "")), **common)
        if event_type == "REFUND.SUCCESS":
            refund_no = resource.get("out_refund_no")
            if resource.get("refund_status") != "SUCCESS" or not isinstance(refund_no, str) \
                    or not OUT_NO_RE.match(refund_no):
                raise WebhookRejected("The refund notification lacks out_refund_no or is not successful.")
            return GatewayEvent(event_id=event_id, kind="refund.succeeded", amount=self._fen(amount, "refund"),
                                currency=china.CNY, refund_external_id=refund_no, **common)
        if event_type.startswith("REFUND."):
            logger.warning("wechatpay refund %s ended as %s", resource.get("out_refund_no"), event_type)
        return GatewayEvent(event_id=event_id, kind="ignored", raw=raw)

    @staticmethod
    def _fen(amount: dict, name: str) -> int:
        value = amount.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise WebhookRejected(f"The notification's amount.{name} is not a positive whole number of fen.")
        return value

    def webhook_response(self, results: list[str]):
        return HttpResponse(status=204)  # WeChat takes any 200/204 as received

    # --- queries and refunds ----------------------------------------------------------------
    def fetch_status(self, payment) -> StatusOutcome:
        if not payment.external_id:
            return StatusOutcome(status="pending")
        response = self._call("GET", f"/v3/pay/transactions/out-trade-no/{quote(payment.external_id)}?"
                                     f"{urlencode({'mchid': self.mchid})}", idempotent=True)
        if response.status == 404:  # ORDER_NOT_EXIST: the buyer never got as far
            return StatusOutcome(status="pending", external_id=payment.external_id)
        if not response.ok:
            raise self._refused(response)
        body = self._json(response)
        state = body.get("trade_state")
        # REFUND: it was paid, then (partly) refunded
        status = "succeeded" if state in ("SUCCESS", "REFUND") else "failed" if state in FAILED_STATES else "pending"
        amount = body.get("amount") if isinstance(body.get("amount"), dict) else {}
        total = amount.get("total") if isinstance(amount.get("total"), int) else 0
        return StatusOutcome(status=status, external_id=payment.external_id, amount=total,
                             currency=str(amount.get("currency") or china.CNY))

    def refund(self, payment, amount: int) -> RefundOutcome:
        from tenants.services import shop_url

        if not payment.external_id:
            return RefundOutcome(succeeded=False, message="This payment never reached WeChat Pay.")
        # one out_refund_no per refund step: a retry of the same step is answered, never paid twice
        refund_no = f"{payment.external_id}R{payment.refunded_amount}T{amount}"
        response = self._call("POST", "/v3/refund/domestic/refunds", body={
            "out_trade_no": payment.external_id, "out_refund_no": refund_no,
            "notify_url": shop_url(self.shop, f"/hooks/payments/{self.slug}/"),
            "amount": {"refund": amount, "total": payment.amount, "currency": china.CNY},
        }, idempotent=True)
        if not response.ok:
            raise self._refused(response)
        body = self._json(response)
        status = body.get("status")
        refunded = body.get("amount", {}).get("refund") if isinstance(body.get("amount"), dict) else None
        if body.get("out_refund_no") != refund_no or refunded != amount:
            return RefundOutcome(succeeded=False, message="WeChat Pay did not confirm the refund.")
        if status == "SUCCESS":
            return RefundOutcome(succeeded=True, external_id=refund_no)
        if status == "PROCESSING":  # REFUND.SUCCESS follows as a notification
            return RefundOutcome(succeeded=False, pending=True, external_id=refund_no)
        return RefundOutcome(succeeded=False, message=f"WeChat Pay could not refund ({status}); refund the buyer "
                                                      f"another way.")

    # --- reconciliation (对账): docs/reconciliation.md, decision 0031 ----------------------
    supports_settlement = True

    def settlement(self, day) -> list[SettlementLine]:
        """The trade bill of ``day`` as a China-time day (WeChat Pay's own business day)."""
        from datetime import datetime, timezone

        from plugins.payments.wechatpay import bills

        query = urlencode({"bill_date": day.isoformat(), "bill_type": "ALL"})
        response = self._call("GET", f"/v3/bill/tradebill?{query}", idempotent=True)
        if not response.ok:
            body = response.json() if isinstance(response.json(), dict) else {}
            if body.get("code") in ("NO_STATEMENT_EXIST", "STATEMENT_CREATING"):
                if body["code"] == "NO_STATEMENT_EXIST" and datetime.now(timezone.utc) >= bills.ready_at(day):
                    return []  # WeChat Pay makes no bill for a day without trades
                raise PaymentError(f"WeChat Pay has not published the bill for {day.isoformat()} yet (bills are "
                                   "ready the next day from about 10 a.m. China time).", retryable=True)
            raise self._refused(response)
        answer = self._json(response)
        download = self._bill_download_path(answer.get("download_url"))
        if download is None:
            raise bills.unreadable("the answer has no valid download link")
        # the download is signed like any call, but its answer is not: the SHA1 vouches for it
        base_path = urlsplit(self.base_url).path.rstrip("/")
        headers = {"Accept": "application/json", "Authorization": signing.authorization(
            mchid=self.mchid, serial_no=self.settings.get("merchant_serial_no", ""), private_key=self._private_key(),
            method="GET", url=base_path + download)}
        file = self.http.request("GET", download, headers=headers)
        if not file.ok:
            raise bills.unreadable(f"the download answered {file.status}")
        bills.check_hash(file.content, answer.get("hash_type"), answer.get("hash_value"))
        return bills.settlement_lines(file.content)

    def _bill_download_path(self, url) -> str | None:
        """The download link as a path under the API base: it must point at WeChat Pay's API
        host (the one we sign for), never elsewhere."""
        if not isinstance(url, str):
            return None
        parts, base = urlsplit(url), urlsplit(self.base_url)
        base_path = base.path.rstrip("/")
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or not parts.path.startswith(base_path + "/"):
            return None
        return parts.path[len(base_path):] + (f"?{parts.query}" if parts.query else "")

    def test_connection(self) -> str:
        """A query for an order that cannot exist: WeChat's signed "not found" proves the
        merchant id, serial and private key, and that the pasted certificate or public key
        verifies its answers."""
        query = urlencode({"mchid": self.mchid})
        response = self._call("GET", f"/v3/pay/transactions/out-trade-no/KAMENGTEST0?{query}", idempotent=True)
        if response.status == 404:
            self._verify_answer(response)
        elif not response.ok:
            raise self._refused(response)
        return ("WeChat Pay accepted the merchant id, certificate serial and private key, and its answer verified "
                "with the platform certificate or public key.")
