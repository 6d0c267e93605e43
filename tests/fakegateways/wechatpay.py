"""A fake WeChat Pay API v3 for tests: real HTTP on 127.0.0.1.

It checks requests as WeChat Pay does — ``Authorization: WECHATPAY2-SHA256-RSA2048``
with a registered merchant id and certificate serial, a timestamp within 5 minutes and
a valid SHA256withRSA signature over ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n``; JSON
bodies; ``out_trade_no`` / ``out_refund_no`` idempotency — signs every answer with a
freshly generated platform key and X.509 certificate (``Wechatpay-*`` headers; after
``use_public_key()`` the key is named as the newer "WeChat Pay public key", ``PUB_KEY_ID_…``), and sends
notifications whose ``resource`` is AES-256-GCM encrypted with the merchant's APIv3 key.

Buyer actions: ``pay(out_trade_no)`` (sync TRANSACTION.SUCCESS, returns the shop's answer).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from plugins.payments.wechatpay import signing
from tests.fakegateways._server import FakeGateway, RecordedRequest, Reply, route

BEIJING = timezone(timedelta(hours=8))
OUT_TRADE_NO_CHARS = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-|*")


@lru_cache(maxsize=8)
def rsa_key(label: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str, serial: int | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenpay.com"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial or x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365 * 5)).sign(key, hashes.SHA256()))


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def error(status: int, code: str, message: str) -> tuple[int, dict]:
    return status, {"code": code, "message": message}


class FakeWeChatPay(FakeGateway):
    name = "wechatpay"

    def __init__(self):
        super().__init__()
        self.platform_key = rsa_key("wechatpay-platform")
        self.platform_certificate = self_signed_certificate(self.platform_key, "Tenpay.com Root CA")
        self.public_key_id = ""  # set by use_public_key(): sign as the "WeChat Pay public key" instead
        self.merchants: dict[str, dict] = {}
        self.orders: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.deliveries: list[dict] = []
        self.hosts: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        # trade bills (交易账单): download tokens; days without a bill yet; a test spoils a bill
        # with ``bill_mangler(text) -> text`` (after the hash: a corrupted download) or
        # ``hash_mangler(text) -> text`` (before it: a file WeChat itself got wrong)
        self.bill_tokens: dict[str, bytes] = {}
        self.unpublished_dates: set[str] = set()
        self.bill_mangler = None
        self.hash_mangler = None

    @property
    def platform_serial(self) -> str:
        return signing.certificate_serial(self.platform_certificate)

    def use_public_key(self) -> str:
        """Sign from now on as newer accounts see it: the same key, named by a public key ID."""
        self.public_key_id = "PUB_KEY_ID_0119" + "".join(str(secrets.randbelow(10)) for _ in range(18))
        return self.public_key_id

    @property
    def platform_public_key_pem(self) -> str:
        return self.platform_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def platform_certificate_pem(self) -> str:
        return certificate_pem(self.platform_certificate)

    def register_merchant(self, *, mchid: str, appid: str, serial_no: str, public_key: rsa.RSAPublicKey,
                          apiv3_key: str) -> None:
        self.merchants[mchid] = {"appid": appid, "serial_no": serial_no.upper(), "public_key": public_key,
                                 "apiv3_key": apiv3_key.encode()}

    # --- signed answers ------------------------------------------------------------------------
    def signed_headers(self, body: str, *, timestamp: int | None = None, nonce: str | None = None,
                       key: rsa.RSAPrivateKey | None = None, serial: str | None = None) -> dict[str, str]:
        timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or secrets.token_hex(16)
        return {"Wechatpay-Timestamp": timestamp_text, "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": signing.sign(signing.response_message(timestamp_text, nonce, body),
                                                    key or self.platform_key),
                "Wechatpay-Serial": serial or self.public_key_id or self.platform_serial,
                "Wechatpay-Signature-Type": signing.SCHEMA, "Request-ID": uuid.uuid4().hex}

    def _reply(self, status: int, body: dict | None) -> Reply:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":")) if body is not None else ""
        headers = {"Content-Type": "application/json; charset=utf-8", **self.signed_headers(text)}
        return Reply(status, text.encode(), headers)

    # --- request checks --------------------------------------------------------------------------
    def _authenticate(self, request: RecordedRequest) -> tuple[dict | None, tuple[int, dict] | None]:
        if "application/json" not in (request.headers.get("Accept") or ""):
            return None, error(406, "PARAM_ERROR", "Accept 须为 application/json")
        try:
            fields = signing.parse_authorization(request.headers.get("Authorization", ""))
        except signing.SignatureError as exc:
            return None, error(401, "SIGN_ERROR", str(exc))
        merchant = self.merchants.get(fields["mchid"])
        if merchant is None:
            return None, error(401, "MCH_NOT_EXISTS", "商户号不存在")
        if fields["serial_no"].upper() != merchant["serial_no"]:
            return None, error(401, "SIGN_ERROR", "商户证书序列号有误")
        if not fields["timestamp"].isdigit() or abs(time.time() - int(fields["timestamp"])) > 300:
            return None, error(401, "SIGN_ERROR", "时间戳超出有效期")
        query = urlencode(request.query, doseq=True)  # the recorded query, re-encoded as it arrived
        url = request.path + (f"?{query}" if query else "")
        message = signing.request_message(request.method, url, fields["timestamp"], fields["nonce_str"],
                                          request.body.decode("utf-8", errors="replace"))
        if not signing.verify(message, fields["signature"], merchant["public_key"]):
            return None, error(401, "SIGN_ERROR", "签名错误")
        return {"mchid": fields["mchid"], **merchant}, None

    def _json_body(self, request: RecordedRequest) -> dict | None:
        if not (request.headers.get("Content-Type") or "").startswith("application/json"):
            return None
        try:
            body = json.loads(request.body)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    # --- create orders ---------------------------------------------------------------------------
    @route("POST", r"/v3/pay/transactions/(?P<kind>native|h5)")
    def create(self, request, kind):
        merchant, problem = self._authenticate(request)
        if problem:
            return self._reply(*problem)
        body = self._json_body(request)
        if body is None:
            return self._reply(*error(400, "PARAM_ERROR", "请求体须为 JSON 对象"))
        out_trade_no, amount = body.get("out_trade_no", ""), body.get("amount") or {}
        checks = [
            (body.get("mchid") == merchant["mchid"], "mchid 与请求头不一致"),
            (body.get("appid") == merchant["appid"], "appid 与 mchid 不匹配"),
            (isinstance(out_trade_no, str) and 6 <= len(out_trade_no) <= 32 and set(out_trade_no) <= OUT_TRADE_NO_CHARS,
             "out_trade_no 须为 6-32 位字母数字_-|*"),
            (isinstance(body.get("description"), str) and 0 < len(body["description"]) <= 127, "description 无效"),
            (isinstance(amount.get("total"), int) and amount["total"] > 0 and amount.get("currency", "CNY") == "CNY",
             "amount.total 须为正整数（分）"),
            (isinstance(body.get("notify_url"), str) and urlsplit(body["notify_url"]).scheme in ("http", "https")
             and not urlsplit(body["notify_url"]).query, "notify_url 须为不带参数的绝对地址"),
        ]
        if kind == "h5":
            scene = body.get("scene_info") or {}
            checks.append((bool(scene.get("payer_client_ip")) and (scene.get("h5_info") or {}).get("type")
                           in ("Wap", "iOS", "Android"), "scene_info 缺少 payer_client_ip 或 h5_info.type"))
        for ok, message in checks:
            if not ok:
                return self._reply(*error(400, "PARAM_ERROR", message))
        existing = self.orders.get(out_trade_no)
        if existing is not None:
            if existing["state"] == "SUCCESS":
                return self._reply(*error(400, "ORDERPAID", "该订单已支付"))
            if existing["request"] != body or existing["kind"] != kind:
                return self._reply(*error(400, "INVALID_REQUEST", "201 商户订单号重复"))
            return self._reply(200, existing["answer"])  # the same order asked again: the same answer
        prepay = "wx" + datetime.now(BEIJING).strftime("%d%H%M%S") + secrets.token_hex(12)
        answer = ({"code_url": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}"} if kind == "native" else
                  {"h5_url": f"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id={prepay}"
                             f"&package={secrets.randbelow(10**10)}"})
        self.orders[out_trade_no] = {"kind": kind, "request": body, "answer": answer, "mchid": merchant["mchid"],
                                     "appid": merchant["appid"], "out_trade_no": out_trade_no,
                                     "total": amount["total"], "state": "NOTPAY", "transaction_id": "",
                                     "notify_url": body["notify_url"], "refunded": 0}
        return self._reply(200, answer)

    @route("GET", r"/v3/pay/transactions/out-trade-no/(?P<out_trade_no>[^/]+)")
    def query(self, request, out_trade_no):
        merchant, problem = self._authenticate(request)
        if problem:
            return self._reply(*problem)
        if request.query.get("mchid") != [merchant["mchid"]]:
            return self._reply(*error(400, "PARAM_ERROR", "mchid 须与请求头一致"))
        order = self.orders.get(out_trade_no)
        if order is None or order["mchid"] != merchant["mchid"]:
            return self._reply(*error(404, "ORDER_NOT_EXIST", "订单不存在"))
        return self._reply(200, self.transaction(order))

    def transaction(self, order: dict) -> dict:
        answer = {"appid": order["appid"], "mchid": order["mchid"], "out_trade_no": order["out_trade_no"],
                  "trade_state": order["state"], "trade_state_desc": order["state"],
                  "amount": {"total": order["total"], "currency": "CNY"}}
        if order["transaction_id"]:
            answer.update(transaction_id=order["transaction_id"], trade_type=order["kind"].upper(),
                          success_time=order["success_time"], payer={"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                          amount={"total": order["total"], "payer_total": order["total"], "currency": "CNY",
                                  "payer_currency": "CNY"})
        return answer

    # --- refunds ---------------------------------------------------------------------------------
    @route("POST", r"/v3/refund/domestic/refunds")
    def refund(self, request):
        merchant, problem = self._authenticate(request)
        if problem:
            return self._reply(*problem)
        body = self._json_body(request)
        if body is None:
            return self._reply(*error(400, "PARAM_ERROR", "请求体须为 JSON 对象"))
        out_refund_no, amount = body.get("out_refund_no", ""), body.get("amount") or {}
        order = self.orders.get(body.get("out_trade_no", ""))
        if order is None or order["mchid"] != merchant["mchid"]:
            return self._reply(*error(404, "RESOURCE_NOT_EXISTS", "订单不存在"))
        if not isinstance(out_refund_no, str) or not 1 <= len(out_refund_no) <= 64:
            return self._reply(*error(400, "PARAM_ERROR", "out_refund_no 无效"))
        existing = self.refunds.get(out_refund_no)
        if existing is not None:  # the same out_refund_no: the same refund, no money moves again
            if existing["request"]["amount"] != amount:
                return self._reply(*error(400, "INVALID_REQUEST", "out_refund_no 已用于另一笔退款"))
            return self._reply(200, self._refund_answer(existing))
        if order["state"] not in ("SUCCESS", "REFUND"):
            return self._reply(*error(400, "INVALID_REQUEST", "订单未支付"))
        refund = amount.get("refund")
        if amount.get("total") != order["total"] or amount.get("currency") != "CNY":
            return self._reply(*error(400, "PARAM_ERROR", "amount.total 与订单金额不一致"))
        if not isinstance(refund, int) or refund <= 0 or refund > order["total"] - order["refunded"]:
            return self._reply(*error(403, "NOT_ENOUGH", "退款金额超过可退金额"))
        record = self.refunds[out_refund_no] = {
            "request": body, "order": order, "refund_id": "50000" + secrets.token_hex(8), "status": "PROCESSING",
            "out_refund_no": out_refund_no, "amount": refund, "notify_url": body.get("notify_url", ""),
            "at": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S")}
        order["refunded"] += refund
        order["state"] = "REFUND"
        answer = self._refund_answer(record)
        record["status"] = "SUCCESS"  # the bank finishes it a moment later and WeChat says so
        self._later(record["notify_url"], "REFUND.SUCCESS", self.refund_resource(record))
        return self._reply(200, answer)

    def _refund_answer(self, record: dict) -> dict:
        return {"refund_id": record["refund_id"], "out_refund_no": record["out_refund_no"],
                "transaction_id": record["order"]["transaction_id"], "out_trade_no": record["order"]["out_trade_no"],
                "channel": "ORIGINAL", "status": record["status"],
                "amount": {"total": record["order"]["total"], "refund": record["amount"],
                           "payer_total": record["order"]["total"], "payer_refund": record["amount"],
                           "currency": "CNY"}}

    def refund_resource(self, record: dict) -> dict:
        return {"mchid": record["order"]["mchid"], "out_trade_no": record["order"]["out_trade_no"],
                "transaction_id": record["order"]["transaction_id"], "out_refund_no": record["out_refund_no"],
                "refund_id": record["refund_id"], "refund_status": "SUCCESS",
                "success_time": datetime.now(BEIJING).isoformat(timespec="seconds"),
                "amount": {"total": record["order"]["total"], "refund": record["amount"],
                           "payer_total": record["order"]["total"], "payer_refund": record["amount"]},
                "user_received_account": "支付用户零钱"}

    # --- trade bills (交易账单) -----------------------------------------------------------------
    BILL_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
                   "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,"
                   "商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注")

    @route("GET", r"/v3/bill/tradebill")
    def trade_bill(self, request):
        merchant, problem = self._authenticate(request)
        if problem:
            return self._reply(*problem)
        bill_date, bill_type = request.query.get("bill_date", [""])[0], request.query.get("bill_type", ["ALL"])[0]
        try:
            day = datetime.strptime(bill_date, "%Y-%m-%d").date()
        except ValueError:
            return self._reply(*error(400, "PARAM_ERROR", "bill_date 格式不正确"))
        if bill_type not in ("ALL", "SUCCESS", "REFUND"):
            return self._reply(*error(400, "PARAM_ERROR", "bill_type 无效"))
        if bill_date in self.unpublished_dates or day >= datetime.now(BEIJING).date() + timedelta(days=1):
            return self._reply(*error(400, "NO_STATEMENT_EXIST", "账单文件不存在"))
        text = self.bill_text(merchant["mchid"], bill_date)
        if self.hash_mangler:
            text = self.hash_mangler(text)
        content = text.encode("utf-8")
        token = secrets.token_urlsafe(24)
        served = self.bill_mangler(text).encode("utf-8") if self.bill_mangler else content
        self.bill_tokens[token] = served
        return self._reply(200, {"hash_type": "SHA1", "hash_value": hashlib.sha1(content).hexdigest(),
                                 "download_url": f"{self.base_url}/v3/billdownload/file?token={token}"})

    @route("GET", r"/v3/billdownload/file")
    def download_bill(self, request):
        merchant, problem = self._authenticate(request)  # signed like any call
        if problem:
            return self._reply(*problem)
        content = self.bill_tokens.pop(request.query.get("token", [""])[0], None)  # one download per link
        if content is None:
            return self._reply(*error(404, "RESOURCE_NOT_EXISTS", "下载链接已失效"))
        return Reply(200, content, {"Content-Type": "application/octet-stream"})  # not signed: the hash vouches

    def bill_text(self, mchid: str, bill_date: str) -> str:
        """The day's bill: SUCCESS rows for payments, REFUND rows for refunds made that China day."""
        def row(*cells) -> str:
            return ",".join(f"`{cell}" for cell in cells)

        def yuan(fen: int) -> str:
            return f"{fen // 100}.{fen % 100:02d}"

        rows = []
        for order in self.orders.values():
            if order["mchid"] != mchid or not order.get("success_time"):
                continue
            paid_at = order["success_time"][:19].replace("T", " ")
            common = [order["appid"], mchid, "0", "", order["transaction_id"], order["out_trade_no"],
                      "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", order["kind"].upper()]
            if paid_at.startswith(bill_date):
                rows.append(row(paid_at, *common, "SUCCESS", "OTHERS", "CNY", yuan(order["total"]), "0.00", "0", "0",
                                "0.00", "0.00", "", "", "Order", "", "0.12000", "0.60%", yuan(order["total"]), "0.00",
                                ""))
            for record in self.refunds.values():
                if record["order"] is order and record["at"].startswith(bill_date):
                    rows.append(row(record["at"], *common, "REFUND", "OTHERS", "CNY", yuan(order["total"]), "0.00",
                                    record["refund_id"], record["out_refund_no"], yuan(record["amount"]), "0.00",
                                    "ORIGINAL", record["status"], "Order", "", "-0.03000", "0.60%",
                                    yuan(order["total"]), yuan(record["amount"]), ""))
        paid = sum(o["total"] for o in self.orders.values() if o["mchid"] == mchid and o.get("success_time", "")
                   .startswith(bill_date))
        refunded = sum(r["amount"] for r in self.refunds.values() if r["at"].startswith(bill_date))
        totals = row(len(rows), yuan(paid), yuan(refunded), "0.00", "0.00000", yuan(paid), yuan(refunded))
        return "\r\n".join([self.BILL_HEADER, *rows, "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,"
                              "申请退款总金额", totals, ""])

    def refund_outside(self, out_trade_no: str, amount: int, *, notify: bool = False) -> str:
        """A refund made in the WeChat Pay merchant platform, not through Kameng (by default
        its notification is lost on the way). Returns its out_refund_no."""
        with self.lock:
            order = self.orders[out_trade_no]
            record = {"request": {}, "order": order, "refund_id": "50000" + secrets.token_hex(8), "status": "SUCCESS",
                      "out_refund_no": "MP" + secrets.token_hex(8), "amount": amount, "notify_url": "",
                      "at": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S")}
            self.refunds[record["out_refund_no"]] = record
            order["refunded"] += amount
            order["state"] = "REFUND"
            if notify:
                self._later(order["notify_url"], "REFUND.SUCCESS", self.refund_resource(record))
            return record["out_refund_no"]

    def backdate(self, days: int = 1) -> None:
        """Move every payment and refund so far ``days`` earlier (China time)."""
        with self.lock:
            for order in self.orders.values():
                if order.get("success_time"):
                    moment = datetime.fromisoformat(order["success_time"]) - timedelta(days=days)
                    order["success_time"] = moment.isoformat(timespec="seconds")
            for record in self.refunds.values():
                moment = datetime.strptime(record["at"], "%Y-%m-%d %H:%M:%S") - timedelta(days=days)
                record["at"] = moment.strftime("%Y-%m-%d %H:%M:%S")

    # --- notifications ---------------------------------------------------------------------------
    def notification(self, event_type: str, resource: dict, *, mchid: str | None = None, event_id: str | None = None,
                     apiv3_key: bytes | None = None, **header_options) -> tuple[bytes, dict[str, str]]:
        """A notification as WeChat sends it: (body, headers). ``header_options`` go to
        :meth:`signed_headers` (timestamp, nonce, key, serial) to make bad ones."""
        key = apiv3_key or self.merchants[mchid or resource["mchid"]]["apiv3_key"]
        original_type = "refund" if event_type.startswith("REFUND.") else "transaction"
        payload = {
            "id": event_id or str(uuid.uuid4()), "create_time": datetime.now(BEIJING).isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource", "event_type": event_type,
            "summary": "支付成功" if original_type == "transaction" else "退款成功",
            "resource": signing.encrypt_resource(json.dumps(resource, ensure_ascii=False).encode(), key,
                                                 associated_data=original_type, original_type=original_type),
        }
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        headers = {"Content-Type": "application/json", **self.signed_headers(body, **header_options)}
        return body.encode(), headers

    def resolve(self, url: str) -> str:
        parts = urlsplit(url)
        base = self.hosts.get(parts.hostname or "")
        if base is None:
            return url
        mapped = urlsplit(base)
        return urlunsplit((mapped.scheme, mapped.netloc, parts.path, parts.query, ""))

    def deliver(self, url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        response = requests.post(self.resolve(url), data=body, headers=headers, timeout=15, allow_redirects=False)
        with self.lock:
            self.deliveries.append({"url": url, "status": response.status_code, "body": response.content})
        return response

    def _later(self, url: str, event_type: str, resource: dict) -> None:
        if not url:
            return
        body, headers = self.notification(event_type, resource)

        def send():
            try:
                self.deliver(url, body, headers)
            except requests.RequestException:
                pass

        thread = threading.Thread(target=send, daemon=True)
        self._threads.append(thread)
        thread.start()

    def pay(self, out_trade_no: str, *, notify: bool = True) -> requests.Response | None:
        """The buyer pays in WeChat: the order succeeds and WeChat notifies the shop at once."""
        with self.lock:
            order = self.orders[out_trade_no]
            assert order["state"] == "NOTPAY", order["state"]
            order.update(state="SUCCESS", transaction_id="4200" + secrets.token_hex(12)[:24],
                         success_time=datetime.now(BEIJING).isoformat(timespec="seconds"))
            body, headers = self.notification("TRANSACTION.SUCCESS", self.transaction(order))
        return self.deliver(order["notify_url"], body, headers) if notify else None
